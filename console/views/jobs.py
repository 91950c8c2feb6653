"""Jobs: the account's batch jobs, and one job's progress and results."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from accounts.models import Membership
from console.access import member_view, render_page


@member_view
def job_list(request: HttpRequest, member: Membership) -> HttpResponse:
    return render_page(request, member, "console/jobs.html", nav="jobs")
