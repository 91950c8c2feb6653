"""Sessions: the account's browser sessions, and one session's timeline."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from accounts.models import Membership
from console.access import member_view, render_page


@member_view
def session_list(request: HttpRequest, member: Membership) -> HttpResponse:
    return render_page(request, member, "console/sessions.html", nav="sessions")
