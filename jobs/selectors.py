"""Reads of jobs: one job with its progress, lists, results pages and exports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from accounts.models import Account
from jobs.models import ACTIVE_JOB_STATUSES, ItemStatus, Job, JobBrowser, JobItem
from project.exceptions import InvalidInput, NotFound
from webhooks.selectors import JobWebhookSummary, job_webhook_summary


def live_job_browser_count(account_id: int) -> int:
    """Browsers the account's jobs hold now (they count against the plan's session limit)."""
    return JobBrowser.objects.filter(account_id=account_id, is_live=True).count()


def live_job_browser_ids() -> set[str]:
    """Profile ids of job browsers that may be running: reconcile must not kill these."""
    return set(JobBrowser.objects.filter(is_live=True).values_list("pk", flat=True))


def live_job_webdriver_ids() -> set[str]:
    return set(
        JobBrowser.objects.filter(is_live=True)
        .exclude(webdriver_session_id="")
        .values_list("webdriver_session_id", flat=True)
    )


_JOB_ID = re.compile(r"job_[0-9a-f]{1,36}")


def job_get(*, account: Account, job_id: str) -> Job:
    """The account's job; another account's job is exactly as missing as no job."""
    job = Job.objects.filter(pk=job_id, account=account).first() if _JOB_ID.fullmatch(job_id) else None
    if job is None:
        raise NotFound(f"Job {job_id!r} not found.", code="job_not_found")
    return job


JOB_LIST_STATUSES = {"queued", "running", "cancelling", "completed", "failed", "cancelled", "active"}


def job_list(*, account: Account, status: str | None = None) -> QuerySet[Job]:
    jobs = Job.objects.filter(account=account)
    if status:
        if status not in JOB_LIST_STATUSES:
            raise InvalidInput(f"status must be one of {sorted(JOB_LIST_STATUSES)}.")
        jobs = (
            jobs.filter(status__in=ACTIVE_JOB_STATUSES) if status == "active" else jobs.filter(status=status)
        )
    # Lists never read the skipped URLs (jobs/api/serializers.py job_output(listed=True)).
    return jobs.defer("invalid_urls", "duplicate_urls").order_by("-created_at", "-pk")


@dataclass(frozen=True)
class JobProgress:
    counts: dict[str, int]
    done: int
    pages_per_minute: float | None
    eta_seconds: int | None
    webhook_failures: int
    webhook_last_error: str


def job_counts(*, job_id: str) -> dict[str, int]:
    counts = dict.fromkeys(ItemStatus.values, 0)
    for row in JobItem.objects.filter(job_id=job_id).values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


def job_progress(*, job: Job) -> JobProgress:
    counts = job_counts(job_id=job.pk)
    done = counts["succeeded"] + counts["failed"]
    remaining = counts["queued"] + counts["running"]
    rate: float | None = None
    eta: int | None = None
    if job.started_at and done:
        end = job.finished_at or timezone.now()
        minutes = max((end - job.started_at).total_seconds(), 1.0) / 60
        rate = round(done / minutes, 1)
        if not job.is_finished:
            eta = int(remaining / rate * 60) if rate > 0 else None
    if job.is_finished:
        eta = 0
    webhook = job_webhook_summary(job_id=job.pk) if job.webhook else JobWebhookSummary(0, "")
    return JobProgress(
        counts=counts,
        done=done,
        pages_per_minute=rate,
        eta_seconds=eta,
        webhook_failures=webhook.failures,
        webhook_last_error=webhook.last_error,
    )


RESULT_STATUSES = {"succeeded", "failed", "skipped", "cancelled"}


def _results_queryset(*, job: Job, status: str | None) -> QuerySet[JobItem]:
    if status:
        if status not in RESULT_STATUSES:
            raise InvalidInput(f"status must be one of {sorted(RESULT_STATUSES)}.")
        statuses = [status]
    else:
        statuses = sorted(RESULT_STATUSES)
    return JobItem.objects.filter(job=job, status__in=statuses).order_by("seq")


def job_results_page(
    *, job: Job, status: str | None, cursor: str | None, limit: int
) -> tuple[list[JobItem], str | None]:
    """Finished items in submit order after `cursor` (the last item's position), and the next cursor."""
    items = _results_queryset(job=job, status=status)
    if cursor:
        try:
            after = int(cursor)
        except ValueError:
            after = -2
        if not -1 <= after < 2**31:
            raise InvalidInput("cursor must be a next_cursor from an earlier page.")
        items = items.filter(seq__gt=after)
    rows = list(items[: limit + 1])
    next_cursor = str(rows[limit - 1].seq) if len(rows) > limit else None
    return rows[:limit], next_cursor


# A row's tenant-sized columns, in bytes of text (as they will be in memory, not as PostgreSQL
# may have compressed them).
_ROW_BYTES = RawSQL(
    "coalesce(octet_length(data::text), 0) + coalesce(octet_length(metadata::text), 0)"
    " + octet_length(url) + octet_length(key) + octet_length(error_message)",
    (),
)


def job_results_iter(*, job: Job, status: str | None, chunk: int = 500) -> Iterator[JobItem]:
    """Every finished item, in submit order, read in keyset chunks (for streamed exports).

    A chunk is at most `chunk` rows and JOB_EXPORT_CHUNK_BYTES of stored data (at least one row):
    the sizes are read first, without the data, so 500 rows of a few MB each are never in memory.
    """
    after = -1
    base = _results_queryset(job=job, status=status)
    budget = settings.JOB_EXPORT_CHUNK_BYTES
    while True:
        sizes = list(
            base.filter(seq__gt=after).annotate(row_bytes=_ROW_BYTES).values_list("seq", "row_bytes")[:chunk]
        )
        if not sizes:
            return
        last, total = sizes[0][0], 0
        for seq, size in sizes:
            total += size
            if total > budget and seq != sizes[0][0]:
                break
            last = seq
        yield from base.filter(seq__gt=after, seq__lte=last)
        if last == sizes[-1][0] and len(sizes) < chunk:
            return
        after = last


def schema_columns(scrape: dict[str, Any]) -> list[str]:
    """The CSV data columns: the schema's top-level fields in schema order, or the text format."""
    schema = scrape.get("schema")
    if isinstance(schema, dict):
        fields = schema.get("fields") if "fields" in schema else schema
        if isinstance(fields, dict):
            return list(fields)
    fmt = scrape.get("format") or "markdown"
    return ["title"] + ([fmt] if fmt in ("text", "markdown") else [])
