"""The overview: the account's numbers at a glance. The page reads fine without JavaScript;
console.js replaces its numbers with /console/overview/numbers/ every CONSOLE_REFRESH_SECONDS."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from accounts.models import Membership
from console.access import member_view, page_context, render_page
from console.selectors import overview_numbers


@member_view
def overview(request: HttpRequest, member: Membership) -> HttpResponse:
    return render_page(
        request,
        member,
        "console/overview.html",
        nav="overview",
        numbers=overview_numbers(account=member.account),
        refresh_seconds=settings.CONSOLE_REFRESH_SECONDS,
    )


@member_view
def overview_numbers_fragment(request: HttpRequest, member: Membership) -> HttpResponse:
    """The overview's numbers alone (an HTML fragment), for the page's refresh."""
    context = page_context(member, nav="overview", numbers=overview_numbers(account=member.account))
    return TemplateResponse(request, "console/_overview_numbers.html", context)


@member_view
def not_found(request: HttpRequest, member: Membership, rest: str) -> HttpResponse:
    raise Http404
