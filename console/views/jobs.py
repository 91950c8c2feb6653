"""Jobs: the account's batch jobs with their progress, one job's counts, ETA and failures by
reason, its results as JSON, JSON lines or CSV (jobs/api/exports.py, as GET /v1/jobs/{id}/results),
and cancel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Membership
from console.access import member_view, render_filtered_list, render_page
from console.selectors import console_job, console_jobs, job_failures, job_recent_items, job_row
from jobs import selectors as job_selectors
from jobs.api import exports
from jobs.api.serializers import item_output
from jobs.models import JobItem, JobStatus
from jobs.screenshots import job_screenshot_token
from jobs.services import job_cancel
from project.exceptions import ApplicationError

JOB_FILTERS = ("all", "active", *JobStatus.values)
RESULT_FORMATS = ("json", "jsonl", "csv")


@member_view
def job_list(request: HttpRequest, member: Membership) -> HttpResponse:
    return render_filtered_list(
        request,
        member,
        "console/jobs.html",
        nav="jobs",
        filters=JOB_FILTERS,
        fetch=lambda status, limit, offset: console_jobs(
            account=member.account, status=None if status == "all" else status, limit=limit, offset=offset
        ),
    )


@member_view
def job_detail(request: HttpRequest, member: Membership, job_id: str) -> HttpResponse:
    job = console_job(account=member.account, job_id=job_id)
    # ?fragment=1: the counts and progress alone, for the page's refresh while the job runs.
    template = "console/_job_live.html" if request.GET.get("fragment") else "console/job.html"
    return render_page(
        request,
        member,
        template,
        nav="jobs",
        refresh_seconds=settings.CONSOLE_REFRESH_SECONDS,
        job=job,
        row=job_row(job),
        failures=job_failures(job=job),
        items=job_recent_items(job=job),
    )


@require_POST
@member_view
def job_cancel_view(request: HttpRequest, member: Membership, job_id: str) -> HttpResponse:
    job = console_job(account=member.account, job_id=job_id)
    try:
        job = job_cancel(job=job)
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Job {job.pk} is {job.status}.")
    return HttpResponseRedirect(reverse("console:job", args=[job.pk]))


def _screenshot_url(request: HttpRequest, item: JobItem) -> str | None:
    if not item.screenshot:
        return None
    token = job_screenshot_token(item.screenshot)
    return request.build_absolute_uri(reverse("job-screenshot", kwargs={"token": token}))


def _json_array(rows: Iterator[JobItem], request: HttpRequest) -> Iterator[str]:
    yield "["
    for n, item in enumerate(rows):
        yield ("," if n else "") + json.dumps(item_output(item, _screenshot_url(request, item)))
    yield "]\n"


@member_view
def job_results(request: HttpRequest, member: Membership, job_id: str, fmt: str) -> StreamingHttpResponse:
    """The whole set of finished items, streamed: the same rows and columns as the API's export."""
    if fmt not in RESULT_FORMATS:
        raise Http404
    job = console_job(account=member.account, job_id=job_id)
    rows = job_selectors.job_results_iter(job=job, status=None)
    shot = partial(_screenshot_url, request)
    response: StreamingHttpResponse
    if fmt == "jsonl":
        response = StreamingHttpResponse(exports.jsonl_lines(rows, shot), content_type="application/x-ndjson")
    elif fmt == "csv":
        columns = job.spec.get("columns") or job_selectors.schema_columns(job.spec.get("scrape") or {})
        response = StreamingHttpResponse(exports.csv_lines(rows, columns, shot), content_type="text/csv")
    else:
        response = StreamingHttpResponse(_json_array(rows, request), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{job.pk}.{fmt}"'
    return response
