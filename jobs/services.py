"""Batch jobs: submit, admission to browsers, item claims and results, billing, cancel, expiry.

Lock order, everywhere: account row, then job row, then item rows, then the balance row
(inside billing.ledger). Each change is a short transaction; workers carry ids only.

Money: at submit the job's maximum cost is held (billing.services.job_hold_place). A page is
claimed only when its price fits in what is held and not promised to pages already in flight
(`credits_pending`), so a job never spends past its hold or its max_credits. A page is charged
from the hold when its result is recorded, in the same transaction and keyed by the item, so a
retry, a redelivery or a lost worker never charges twice. The end releases what is left.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Account, Plan
from billing.services import job_hold_place, job_hold_release, job_page_charge, prices_of
from jobs.models import (
    ACTIVE_JOB_STATUSES,
    ItemStatus,
    Job,
    JobBrowser,
    JobEndedReason,
    JobItem,
    JobStatus,
    WebhookDelivery,
)
from jobs.selectors import schema_columns
from project.exceptions import ApplicationError, InvalidInput
from project.netpolicy import IPAddress
from sessions.location import BrowserLocation
from sessions.services import account_browsers_in_use
from sessions.url_policy import navigation_url

logger = logging.getLogger(__name__)


class Conflict(ApplicationError):
    """A final 409 (a finished job, a reused Idempotency-Key): sending it again cannot succeed."""

    status_code = 409
    code = "conflict"
    default_detail = "Conflict."
    retryable = False


def send_job_task(name: str, *args: Any, **options: Any) -> None:
    """Enqueue a worker task by name once the transaction commits (jobs never import workers)."""
    transaction.on_commit(
        lambda: current_app.send_task(f"workers.job_tasks.{name}", args=list(args), **options)
    )


# Submit ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    items: list[dict[str, Any]]  # {"url", "key"?, "metadata"?}
    scrape: dict[str, Any]
    screenshot: bool = False
    wait_for: dict[str, Any] | None = None
    page_timeout_seconds: int = 30
    max_concurrency: int = 2
    per_domain_concurrency: int = 2
    max_retries: int = 2
    max_credits: int | None = None
    ignore_invalid_urls: bool = False
    webhook: dict[str, Any] | None = None


def request_fingerprint(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def normalise_url(url: str) -> str:
    """The de-duplication key of a URL: scheme and host lower-cased, default port and fragment
    dropped, an empty path as "/"."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    if parts.username:
        userinfo = parts.username + (f":{parts.password}" if parts.password else "")
        host = f"{userinfo}@{host}"
    return urlunsplit((parts.scheme.lower(), host, parts.path or "/", parts.query, ""))


def _checked_url(url: Any, resolved: dict[tuple[str, int], list[IPAddress]]) -> tuple[str, str | None]:
    """(the URL the browser will load, None) or ("", why it cannot be visited).

    The same policy as `navigate` (sessions/url_policy.py): the WHATWG serialisation is what the
    browser loads; each host is resolved once per submit.
    """
    if not isinstance(url, str) or not url.strip():
        return "", "not a URL."
    try:
        return navigation_url(url, resolved=resolved), None
    except InvalidInput as exc:
        return "", exc.detail


def page_price(*, screenshot: bool) -> int:
    return sum(prices_of(["scrape", "screenshot"] if screenshot else ["scrape"]))


def job_submit(
    *, account: Account, spec: JobSpec, idempotency_key: str = "", request_hash: str = ""
) -> tuple[Job, bool]:
    """Create a job and its items and hold its maximum cost; (job, created).

    The same Idempotency-Key with the same body returns the job it created (created False); with
    another body, 409. 402 (nothing created) when the balance does not cover the maximum cost.
    """
    if idempotency_key:
        existing = _job_for_key(account, idempotency_key, request_hash)
        if existing is not None:
            return existing, False
    # Read afresh: the account that authentication builds carries only the plan's hot fields.
    plan = Plan.objects.get(pk=account.plan_id)
    items, invalid, duplicates = _prepare_items(spec)
    if len(items) > plan.max_job_urls:
        raise InvalidInput(
            f"The {plan.name} plan allows {plan.max_job_urls} URLs per job and this job has {len(items)}.",
            code="job_too_large",
            extra={"limit": plan.max_job_urls, "urls": len(items)},
        )
    if not items:
        raise InvalidInput(
            "The job has no valid URL to visit.", code="no_valid_urls", extra={"invalid_urls": invalid}
        )
    price = page_price(screenshot=spec.screenshot)
    hold = len(items) * price
    if spec.max_credits is not None:
        if spec.max_credits < price:
            raise InvalidInput(
                f"max_credits {spec.max_credits} does not cover one page ({price} credits).",
                code="budget_too_small",
                extra={"page_price": price},
            )
        hold = min(hold, spec.max_credits)
    max_concurrency = spec.max_concurrency
    if plan.max_concurrent_sessions is not None:
        max_concurrency = min(max_concurrency, plan.max_concurrent_sessions)
    job = Job(
        account=account,
        spec={
            "scrape": spec.scrape,
            # jsonb does not keep key order: the export's columns are fixed here, in schema order.
            "columns": schema_columns(spec.scrape),
            "screenshot": spec.screenshot,
            "wait_for": spec.wait_for,
            "page_timeout_seconds": spec.page_timeout_seconds,
        },
        max_concurrency=max_concurrency,
        per_domain_concurrency=spec.per_domain_concurrency,
        max_retries=spec.max_retries,
        max_credits=spec.max_credits,
        total=len(items),
        invalid_urls=invalid,
        duplicate_urls=duplicates,
        page_price=price,
        credits_held=hold,
        webhook=spec.webhook,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    try:
        with transaction.atomic():
            job.save(force_insert=True)
            JobItem.objects.bulk_create(
                [
                    JobItem(
                        job=job,
                        seq=seq,
                        key=item["key"],
                        url=item["url"],
                        domain=item["domain"],
                        metadata=item.get("metadata"),
                    )
                    for seq, item in enumerate(items)
                ],
                batch_size=2000,
            )
            job_hold_place(account_id=account.pk, job_id=job.pk, amount=hold)
            send_job_task("jobs_dispatch")
    except IntegrityError:
        # Another request with the same Idempotency-Key won the race: answer with its job.
        if idempotency_key:
            existing = _job_for_key(account, idempotency_key, request_hash)
            if existing is not None:
                return existing, False
        raise
    return job, True


def _job_for_key(account: Account, key: str, request_hash: str) -> Job | None:
    existing = Job.objects.filter(account=account, idempotency_key=key).first()
    if existing is not None and existing.request_hash != request_hash:
        raise Conflict(
            "This Idempotency-Key was used for a different job request; use a new key.",
            code="idempotency_key_reused",
            extra={"job_id": existing.pk},
        )
    return existing


def _prepare_items(spec: JobSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    resolved: dict[tuple[str, int], list[IPAddress]] = {}
    items: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    duplicates: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(spec.items):
        given = raw.get("url")
        url, problem = _checked_url(given, resolved)
        if problem is not None:
            if not spec.ignore_invalid_urls:
                raise InvalidInput(
                    f"URL {index} ({str(given)[:200]!r}) cannot be visited: {problem} "
                    "Set ignore_invalid_urls to skip such URLs.",
                    code="invalid_url",
                    extra={"url": given, "index": index},
                )
            invalid.append({"url": given, "index": index, "reason": problem})
            continue
        key = raw.get("key") or normalise_url(url)
        if key in seen:
            duplicates.append(str(given))
            continue
        seen.add(key)
        items.append(
            {
                "url": url,
                "key": key,
                "domain": (urlsplit(url).hostname or "").lower(),
                "metadata": raw.get("metadata"),
            }
        )
    return items, invalid, duplicates


# Admission: browsers for jobs -------------------------------------------------------------------


def jobs_admit() -> list[str]:
    """Give active jobs the browsers they may have; return the new browser ids (to be started).

    A job gets up to `max_concurrency` browsers, fewer while it has fewer open items, and only
    in slots the plan's concurrent-session limit leaves free (sessions included); a queued job
    also waits while the account runs its plan's maximum of jobs. Oldest jobs first.
    """
    new: list[str] = []
    account_ids = set(
        Job.objects.filter(status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).values_list(
            "account_id", flat=True
        )
    )
    for account_id in sorted(account_ids):
        new += _admit_account(account_id)
    return new


def _admit_account(account_id: int) -> list[str]:
    now = timezone.now()
    new: list[str] = []
    with transaction.atomic():
        # The account lock serializes this with session creates, which count the same slots.
        account = Account.objects.select_for_update().select_related("plan").get(pk=account_id)
        plan = account.plan
        free = (
            None
            if plan.max_concurrent_sessions is None
            else plan.max_concurrent_sessions - account_browsers_in_use(account_id=account_id)
        )
        running_jobs = Job.objects.filter(
            account_id=account_id, status__in=(JobStatus.RUNNING, JobStatus.CANCELLING)
        ).count()
        for job in Job.objects.filter(
            account_id=account_id, status__in=(JobStatus.QUEUED, JobStatus.RUNNING)
        ).order_by("created_at"):
            if free is not None and free <= 0:
                break
            if job.status == JobStatus.QUEUED and (
                plan.max_running_jobs is not None and running_jobs >= plan.max_running_jobs
            ):
                continue
            open_items = JobItem.objects.filter(job=job, status=ItemStatus.QUEUED).count()
            live = JobBrowser.objects.filter(job=job, is_live=True).count()
            most = job.max_concurrency
            if job.per_domain_concurrency < most:
                # More browsers than the domains allow at once would only wait.
                domains = (
                    JobItem.objects.filter(job=job, status__in=(ItemStatus.QUEUED, ItemStatus.RUNNING))
                    .values("domain")
                    .distinct()
                    .count()
                )
                most = min(most, domains * job.per_domain_concurrency)
            want = min(most - live, open_items)
            if free is not None:
                want = min(want, free)
            if want <= 0:
                continue
            browsers = [
                JobBrowser(
                    job=job,
                    account_id=account_id,
                    # Its task may wait in the queue behind other jobs' browsers.
                    lease_expires_at=now + timedelta(seconds=settings.JOB_BROWSER_QUEUED_LEASE_SECONDS),
                )
                for _ in range(want)
            ]
            JobBrowser.objects.bulk_create(browsers)
            if free is not None:
                free -= want
            if job.status == JobStatus.QUEUED:
                Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
                    status=JobStatus.RUNNING, started_at=now
                )
                running_jobs += 1
            new += [browser.pk for browser in browsers]
    return new


def job_browser_renew(*, browser_id: str, item_id: int | None, seconds: int | None = None) -> bool:
    """The heartbeat: extend the browser's lease and its current item's; False if it was ended."""
    now = timezone.now()
    lease = seconds or settings.JOB_BROWSER_LEASE_SECONDS
    alive = JobBrowser.objects.filter(pk=browser_id, is_live=True).update(
        lease_expires_at=now + timedelta(seconds=lease)
    )
    if item_id is not None:
        JobItem.objects.filter(pk=item_id, status=ItemStatus.RUNNING, leased_by=browser_id).update(
            lease_expires_at=now + timedelta(seconds=settings.JOB_ITEM_LEASE_SECONDS)
        )
    return bool(alive)


def job_browser_attached(*, browser_id: str, location: BrowserLocation) -> bool:
    """Record where the browser runs; False if the row was ended meanwhile (stop it)."""
    return bool(
        JobBrowser.objects.filter(pk=browser_id, is_live=True).update(
            pages_on_browser=0, browser_released_at=None, **location.columns()
        )
    )


def job_browser_end(*, browser_id: str, released: bool) -> None:
    """The browser's work is over (no more items, job over, or it was lost)."""
    now = timezone.now()
    JobBrowser.objects.filter(pk=browser_id, is_live=True).update(is_live=False, ended_at=now)
    if released:
        JobBrowser.objects.filter(pk=browser_id).update(browser_released_at=now)


# Items: claim and record ------------------------------------------------------------------------


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
                _finish(job, JobStatus.COMPLETED, JobEndedReason.BUDGET_EXHAUSTED)
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
        job_update: dict[str, Any] = {"credits_pending": F("credits_pending") - job.page_price}
        item.leased_by = ""
        item.lease_expires_at = None
        tries = item.attempts - item.lost_attempts
        if job.status != JobStatus.RUNNING:
            item.status = ItemStatus.CANCELLED
            item.finished_at = now
        elif not outcome.ok and outcome.transient and tries <= job.max_retries:
            item.status = ItemStatus.QUEUED
            item.not_before = now + timedelta(
                seconds=retry_delay(attempt=tries, retry_after=outcome.retry_after)
            )
            _fill(item, outcome)
        else:
            item.status = ItemStatus.SUCCEEDED if outcome.ok else ItemStatus.FAILED
            item.finished_at = now
            _fill(item, outcome)
            if outcome.chargeable:
                job_page_charge(
                    account_id=job.account_id,
                    job_id=job.pk,
                    item_id=item.pk,
                    amount=job.page_price,
                    reason=f"job {job.pk}: {item.url[:200]}",
                )
                item.credits = job.page_price
                job_update["credits_held"] = F("credits_held") - job.page_price
                job_update["credits_used"] = F("credits_used") + job.page_price
            events.append(("page" if outcome.ok else "page_failed", item))
        item.save()
        Job.objects.filter(pk=job.pk).update(**job_update)
        JobBrowser.objects.filter(pk=browser_id).update(
            pages_done=F("pages_done") + 1, pages_on_browser=F("pages_on_browser") + 1
        )
        for event, done in events:
            _webhook_queue(job, event, _item_event(done))
    return item.status


def _fill(item: JobItem, outcome: PageOutcome) -> None:
    item.http_status = outcome.http_status
    item.final_url = outcome.final_url[:4096]
    item.data = outcome.data if outcome.ok else None
    item.screenshot = outcome.screenshot
    item.error_code = "" if outcome.ok else outcome.error_code
    item.error_message = "" if outcome.ok else outcome.error_message[:2000]


# Finishing ------------------------------------------------------------------------------------


def _finish(job: Job, status: str, reason: str, error: str = "") -> bool:
    """End a job whose row lock the caller holds: skip what never ran, release the unused hold."""
    if job.is_finished:
        return False
    now = timezone.now()
    if reason == JobEndedReason.CANCELLED:
        JobItem.objects.filter(job=job, status__in=(ItemStatus.QUEUED, ItemStatus.RUNNING)).update(
            status=ItemStatus.CANCELLED, finished_at=now, leased_by="", lease_expires_at=None
        )
    else:
        JobItem.objects.filter(job=job, status__in=(ItemStatus.QUEUED, ItemStatus.RUNNING)).update(
            status=ItemStatus.SKIPPED, finished_at=now, leased_by="", lease_expires_at=None
        )
    job.refresh_from_db(fields=["credits_held", "credits_pending"])
    job_hold_release(account_id=job.account_id, job_id=job.pk, amount=job.credits_held)
    Job.objects.filter(pk=job.pk).update(
        status=status,
        ended_reason=reason,
        error=error[:2000],
        finished_at=now,
        expires_at=now + timedelta(days=settings.JOB_RESULTS_TTL_DAYS),
        credits_held=0,
        credits_pending=0,
    )
    JobBrowser.objects.filter(job=job, is_live=True).update(is_live=False, ended_at=now)
    job.status, job.ended_reason, job.finished_at = status, reason, now
    _webhook_queue(job, "cancelled" if status == JobStatus.CANCELLED else "completed", _job_event(job))
    return True


def job_finish_if_done(*, job_id: str) -> bool:
    """End a running or cancelling job that has no open items left; safe to call any time."""
    with transaction.atomic():
        job = Job.objects.select_for_update(no_key=True).filter(pk=job_id).first()
        if job is None or job.status not in (JobStatus.RUNNING, JobStatus.CANCELLING):
            return False
        if job.status == JobStatus.RUNNING:
            if JobItem.objects.filter(job=job, status__in=(ItemStatus.QUEUED, ItemStatus.RUNNING)).exists():
                return False
            return _finish(job, JobStatus.COMPLETED, JobEndedReason.ALL_DONE)
        if JobItem.objects.filter(job=job, status=ItemStatus.RUNNING).exists():
            return False
        return _finish(job, JobStatus.CANCELLED, JobEndedReason.CANCELLED)


def job_cancel(*, job: Job) -> Job:
    """Cancel: queued items end `cancelled` at once, pages in flight stop at their next step
    (within page_timeout_seconds) and cost nothing; results so far stay. 409 if finished."""
    with transaction.atomic():
        job = Job.objects.select_for_update(no_key=True).get(pk=job.pk)
        if job.is_finished:
            raise Conflict(f"Job {job.pk} has already ended ({job.status}).", code="job_finished")
        if job.status != JobStatus.CANCELLING:
            Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLING)
            JobItem.objects.filter(job=job, status=ItemStatus.QUEUED).update(
                status=ItemStatus.CANCELLED, finished_at=timezone.now()
            )
            job.status = JobStatus.CANCELLING
        if not JobItem.objects.filter(job=job, status=ItemStatus.RUNNING).exists():
            _finish(job, JobStatus.CANCELLED, JobEndedReason.CANCELLED)
    job.refresh_from_db()
    return job


MAX_LOST_ATTEMPTS = 3


@dataclass
class Tick:
    items_requeued: int = 0
    browsers_lost: list[tuple[str, BrowserLocation]] = field(default_factory=list)  # (id, where)
    jobs_finished: int = 0


def jobs_tick(*, now: datetime | None = None) -> Tick:
    """The Beat pass: expired item leases back to the queue, browsers whose worker is gone
    ended, jobs with nothing left finished. Safe to run twice at once."""
    now = now or timezone.now()
    tick = Tick()
    expired_jobs = set(
        JobItem.objects.filter(status=ItemStatus.RUNNING, lease_expires_at__lt=now).values_list(
            "job_id", flat=True
        )
    )
    for job_id in expired_jobs:
        with transaction.atomic():
            job = Job.objects.select_for_update(no_key=True).filter(pk=job_id).first()
            if job is None:
                continue
            ids = list(
                JobItem.objects.select_for_update(skip_locked=True)
                .filter(job=job, status=ItemStatus.RUNNING, lease_expires_at__lt=now)
                .values_list("pk", flat=True)
            )
            if not ids:
                continue
            # A page whose worker was lost MAX_LOST_ATTEMPTS times is likely what kills it: it
            # fails (not charged) instead of taking down worker after worker.
            JobItem.objects.filter(pk__in=ids, lost_attempts__gte=MAX_LOST_ATTEMPTS - 1).update(
                status=ItemStatus.FAILED,
                finished_at=now,
                leased_by="",
                lease_expires_at=None,
                lost_attempts=F("lost_attempts") + 1,
                error_code="worker_lost",
                error_message=f"The worker processing this page was lost {MAX_LOST_ATTEMPTS} times.",
            )
            JobItem.objects.filter(pk__in=ids, status=ItemStatus.RUNNING).update(
                status=ItemStatus.QUEUED,
                leased_by="",
                lease_expires_at=None,
                lost_attempts=F("lost_attempts") + 1,
            )
            Job.objects.filter(pk=job.pk).update(
                credits_pending=F("credits_pending") - len(ids) * job.page_price
            )
            tick.items_requeued += len(ids)
            logger.warning("job %s: %d items whose worker was lost are queued again", job_id, len(ids))
    for browser in JobBrowser.objects.filter(is_live=True, lease_expires_at__lt=now):
        if JobBrowser.objects.filter(pk=browser.pk, is_live=True).update(is_live=False, ended_at=now):
            tick.browsers_lost.append((browser.pk, browser.location))
    for job_id in Job.objects.filter(status__in=(JobStatus.RUNNING, JobStatus.CANCELLING)).values_list(
        "pk", flat=True
    ):
        tick.jobs_finished += job_finish_if_done(job_id=job_id)
    return tick


def job_browsers_unreleased(*, older_than_seconds: int) -> list[tuple[str, BrowserLocation]]:
    """Ended browsers nobody stopped (their task died): the caller stops them."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return [
        (browser.pk, browser.location)
        for browser in JobBrowser.objects.filter(
            is_live=False, browser_released_at__isnull=True, ended_at__lte=cutoff
        ).exclude(webdriver_session_id="")[:200]
    ]


def job_browser_released(*, browser_id: str) -> None:
    JobBrowser.objects.filter(pk=browser_id, browser_released_at__isnull=True).update(
        browser_released_at=timezone.now()
    )


def jobs_purge_expired(*, now: datetime | None = None, batch: int = 20) -> list[str]:
    """Delete finished jobs whose results expired (rows); return their screenshot names."""
    now = now or timezone.now()
    shots: list[str] = []
    for job in Job.objects.filter(expires_at__lte=now)[:batch]:
        if (
            JobBrowser.objects.filter(job=job, browser_released_at__isnull=True)
            .exclude(webdriver_session_id="")
            .exists()
        ):
            continue  # a browser to stop first
        shots += list(
            JobItem.objects.filter(job=job).exclude(screenshot="").values_list("screenshot", flat=True)
        )
        job.delete()
    return shots


# Webhooks -------------------------------------------------------------------------------------


def _item_event(item: JobItem) -> dict[str, Any]:
    return {
        "item_id": item.pk,
        "key": item.key,
        "url": item.url,
        "status": item.status,
        "http_status": item.http_status,
        "error": {"code": item.error_code, "message": item.error_message} if item.error_code else None,
        "credits": item.credits,
    }


def _job_event(job: Job) -> dict[str, Any]:
    return {"status": job.status, "ended_reason": job.ended_reason}


def _webhook_queue(job: Job, event: str, data: dict[str, Any]) -> None:
    hook = job.webhook
    if not hook:
        return
    events = hook.get("events") or ["page", "page_failed", "completed", "cancelled"]
    if event not in events:
        return
    suffix = data.get("item_id", "job")
    payload = {"event": event, "job_id": job.pk, "created_at": timezone.now().isoformat(), "data": data}
    delivery, created = WebhookDelivery.objects.get_or_create(
        idempotency_key=f"{job.pk}:{event}:{suffix}",
        defaults={"job": job, "event": event, "payload": payload},
    )
    if created:
        send_job_task("webhook_deliver", delivery.pk)


def webhook_target(*, delivery_id: int) -> tuple[WebhookDelivery, dict[str, Any]] | None:
    delivery = WebhookDelivery.objects.select_related("job").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING or not delivery.job.webhook:
        return None
    return delivery, delivery.job.webhook


def webhook_attempted(
    *, delivery_id: int, ok: bool, status_code: int | None, error: str, final: bool
) -> None:
    now = timezone.now()
    if ok:
        status = WebhookDelivery.Status.DELIVERED
    else:
        status = WebhookDelivery.Status.FAILED if final else WebhookDelivery.Status.PENDING
    WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).update(
        attempts=F("attempts") + 1,
        last_status_code=status_code,
        last_error=error[:500],
        status=status,
        delivered_at=now if ok else None,
    )


def active_job_ids() -> list[str]:
    return list(Job.objects.filter(status__in=ACTIVE_JOB_STATUSES).values_list("pk", flat=True))
