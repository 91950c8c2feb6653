"""Items: a browser claims the next page under the job's row lock and records each try's outcome,
charging the try from the hold in the same transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.services import job_page_charge
from jobs.models import (
    ItemStatus,
    Job,
    JobBrowser,
    JobEndedReason,
    JobItem,
    JobStatus,
)
from jobs.services.finishing import job_end_locked
from jobs.services.webhooks import webhook_item_event, webhook_queue


@dataclass
class Claim:
    state: str  # "claimed" | "wait" | "done" | "stop"
    item: JobItem | None = None
    wait_seconds: float = 0.0


_CANDIDATE = """
    SELECT i.id FROM jobs_jobitem i
    WHERE i.job_id = %(job)s AND i.status = 'queued'
      AND (i.not_before IS NULL OR i.not_before <= now())
      AND i.domain NOT IN (
          SELECT r.domain FROM jobs_jobitem r
          WHERE r.job_id = %(job)s AND r.status = 'running'
          GROUP BY r.domain HAVING count(*) >= %(per_domain)s
      )
    ORDER BY i.seq
    LIMIT 1
    FOR UPDATE SKIP LOCKED
"""


_TAKE = """
    UPDATE jobs_jobitem SET status = 'running', attempts = attempts + 1, leased_by = %s, lease_expires_at = %s
    WHERE id = %s
    RETURNING id, url, job_id
"""


def item_claim(*, job_id: str, browser_id: str) -> Claim:
    """The next item for this browser, leased to it; or why there is none.

    `wait`: items remain but none may start now (per-domain limit, Retry-After, budget in flight);
    `done`: no queued items are left; `stop`: the job is not running or this browser was ended.
    The job row lock makes the per-domain count and the budget exact under concurrent claims.
    """
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update(no_key=True).filter(pk=job_id).first()
        # A browser that was ended (its job finished, or it was presumed lost) learns it from its
        # heartbeat within a beat; a page it claims meanwhile is recorded only if its lease holds.
        if job is None or job.status != JobStatus.RUNNING:
            return Claim("stop")
        if job.credits_held - job.credits_pending < job.page_price:
            if not JobItem.objects.filter(job=job, status=ItemStatus.QUEUED).exists():
                return Claim("done")
            if job.credits_pending == 0:
                job_end_locked(job, JobStatus.COMPLETED, JobEndedReason.BUDGET_EXHAUSTED)
                return Claim("stop")
            return Claim("wait", wait_seconds=0.5)  # a page in flight may yet give its share back
        with connection.cursor() as cursor:
            cursor.execute(_CANDIDATE, {"job": job_id, "per_domain": job.per_domain_concurrency})
            row = cursor.fetchone()
        if row is None:
            queued = JobItem.objects.filter(job=job, status=ItemStatus.QUEUED)
            soonest = queued.order_by(F("not_before").asc(nulls_first=True)).values_list(
                "not_before", flat=True
            )
            if not queued.exists():
                return Claim("done")
            first = soonest.first()
            wait = (first - now).total_seconds() if first else 0.2
            return Claim("wait", wait_seconds=min(max(wait, 0.05), 1.0))
        with connection.cursor() as cursor:
            cursor.execute(
                _TAKE, [browser_id, now + timedelta(seconds=settings.JOB_ITEM_LEASE_SECONDS), row[0]]
            )
            item_id, url, job_id_taken = cursor.fetchone()
        Job.objects.filter(pk=job.pk).update(credits_pending=F("credits_pending") + job.page_price)
    return Claim("claimed", item=JobItem(pk=item_id, url=url, job_id=job_id_taken))


# Failures of our own browsers (not the page's): such a try costs nothing. Every other try is
# charged the page's price, whatever its outcome (timeouts, connection errors, refusals included):
# a page that never loads would otherwise run the tenant's JavaScript for free, retry after retry.
OUR_FAILURES = frozenset({"browser_start_failed", "browser_crashed", "browser_error", "worker_lost"})
# An upstream proxy's failure (the pool's or the tenant's own: unreachable, 407, a refused tunnel,
# a SOCKS error): transient, retried, and not charged either (docs/proxies.md).
PROXY_FAILURE = "proxy_error"
UNCHARGED_FAILURES = OUR_FAILURES | {PROXY_FAILURE}


@dataclass
class PageOutcome:
    ok: bool
    # A failure worth another try (timeouts, connection errors, HTTP 408/429/5xx, a crash).
    transient: bool = False
    # Charged if this is the final outcome: the page loaded and was processed (or the failure is
    # the target's: HTTP errors, a selector that never appeared).
    chargeable: bool = False
    http_status: int | None = None
    final_url: str = ""
    data: Any = None
    screenshot: str = ""
    error_code: str = ""
    error_message: str = ""
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def retry_delay(*, attempt: int, retry_after: float | None) -> float:
    """Seconds before the next try: the site's Retry-After when it sent one (capped), else
    exponential backoff from JOB_RETRY_BACKOFF_SECONDS."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), float(settings.JOB_RETRY_AFTER_MAX_SECONDS))
    return min(float(settings.JOB_RETRY_BACKOFF_SECONDS) * 2.0 ** max(attempt - 1, 0), 60.0)


def item_record(*, item_id: int, job_id: str, browser_id: str, outcome: PageOutcome) -> str | None:
    """Record a try's outcome; return the item's new status, or None if the lease was lost.

    A lost lease means the item went back to the queue (this worker was presumed dead): the
    outcome is dropped, so an item completes and is charged at most once. After a cancel,
    pages still in flight end `cancelled` and cost nothing.
    """
    now = timezone.now()
    events: list[tuple[str, JobItem]] = []
    with transaction.atomic():
        job = Job.objects.select_for_update(no_key=True).filter(pk=job_id).first()
        if job is None:
            return None
        item = (
            JobItem.objects.select_for_update()
            .filter(pk=item_id, status=ItemStatus.RUNNING, leased_by=browser_id)
            .first()
        )
        if item is None:
            return None
        outcome = _within_data_cap(outcome)
        job_update: dict[str, Any] = {"credits_pending": F("credits_pending") - job.page_price}
        item.leased_by = ""
        item.lease_expires_at = None
        tries = item.attempts - item.lost_attempts
        if job.status != JobStatus.RUNNING:
            item.status = ItemStatus.CANCELLED
            item.finished_at = now
        else:
            if outcome.ok or outcome.error_code not in UNCHARGED_FAILURES:
                # Browser time, whatever the outcome: each try once (keyed by its number).
                job_page_charge(
                    account_id=job.account_id,
                    job_id=job.pk,
                    item_id=item.pk,
                    attempt=item.attempts,
                    amount=job.page_price,
                    reason=f"job {job.pk}: {item.url[:200]}",
                    api_key_id=job.api_key_id,
                )
                item.credits += job.page_price
                job_update["credits_held"] = F("credits_held") - job.page_price
                job_update["credits_used"] = F("credits_used") + job.page_price
            if not outcome.ok and outcome.transient and tries <= job.max_retries:
                item.status = ItemStatus.QUEUED
                item.not_before = now + timedelta(
                    seconds=retry_delay(attempt=tries, retry_after=outcome.retry_after)
                )
                _fill(item, outcome)
            else:
                item.status = ItemStatus.SUCCEEDED if outcome.ok else ItemStatus.FAILED
                item.finished_at = now
                _fill(item, outcome)
                events.append(("page" if outcome.ok else "page_failed", item))
        item.save()
        Job.objects.filter(pk=job.pk).update(**job_update)
        JobBrowser.objects.filter(pk=browser_id).update(
            pages_done=F("pages_done") + 1, pages_on_browser=F("pages_on_browser") + 1
        )
        for event, done in events:
            webhook_queue(job, event, webhook_item_event(done))
    return item.status


def _within_data_cap(outcome: PageOutcome) -> PageOutcome:
    """A page whose data is larger than JOB_ITEM_DATA_MAX_BYTES (as JSON) keeps none of it: the
    item fails `result_too_large`, charged (the page was loaded and processed)."""
    if not outcome.ok or outcome.data is None:
        return outcome
    size = len(json.dumps(outcome.data, ensure_ascii=False, separators=(",", ":")).encode())
    if size <= settings.JOB_ITEM_DATA_MAX_BYTES:
        return outcome
    return replace(
        outcome,
        ok=False,
        transient=False,
        chargeable=True,
        data=None,
        error_code="result_too_large",
        error_message=(
            f"The page's data is {size} bytes of JSON, more than the {settings.JOB_ITEM_DATA_MAX_BYTES} "
            "an item keeps; narrow the scrape (a selector or a schema)."
        ),
    )


def _fill(item: JobItem, outcome: PageOutcome) -> None:
    item.http_status = outcome.http_status
    item.final_url = outcome.final_url[:4096]
    item.data = outcome.data if outcome.ok else None
    item.screenshot = outcome.screenshot
    item.error_code = "" if outcome.ok else outcome.error_code
    item.error_message = "" if outcome.ok else outcome.error_message[:2000]
