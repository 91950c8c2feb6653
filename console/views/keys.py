"""The API keys page: create, list, revoke, spend caps. A placeholder in the console skeleton;
the billing work (issue 25, branch w4-billing) fills it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from accounts.models import Membership
from console.access import member_view, render_page


@member_view
def keys(request: HttpRequest, member: Membership) -> HttpResponse:
    return render_page(request, member, "console/keys.html", nav="keys")
