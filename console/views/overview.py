"""The overview: the account's numbers at a glance, refreshed in place (console/static/console.js)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from accounts.models import Membership
from console.access import member_view, render_page
from console.selectors import overview_numbers


@member_view
def overview(request: HttpRequest, member: Membership) -> HttpResponse:
    return render_page(
        request,
        member,
        "console/overview.html",
        nav="overview",
        numbers=overview_numbers(account=member.account),
    )
