"""Usage: credits by kind over 24 h, 7 d and 30 d, as charts, tables and CSV."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from accounts.models import Membership
from console.access import member_view, render_page


@member_view
def usage(request: HttpRequest, member: Membership) -> HttpResponse:
    return render_page(request, member, "console/usage.html", nav="usage")
