"""Finishing: cancel, the end of a job (its unused hold released), the Beat pass that requeues
lost pages, and the purge of expired results."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.services import job_hold_release
from jobs.models import (
    ItemStatus,
    Job,
    JobBrowser,
    JobEndedReason,
    JobItem,
    JobStatus,
)
from jobs.services.webhooks import webhook_job_event, webhook_queue
from project.exceptions import Conflict
from sessions.location import BrowserLocation

logger = logging.getLogger(__name__)


def job_end_locked(job: Job, status: str, reason: str, error: str = "") -> bool:
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
    job_hold_release(
        account_id=job.account_id, job_id=job.pk, amount=job.credits_held, api_key_id=job.api_key_id
    )
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
    webhook_queue(job, "cancelled" if status == JobStatus.CANCELLED else "completed", webhook_job_event(job))
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
            return job_end_locked(job, JobStatus.COMPLETED, JobEndedReason.ALL_DONE)
        if JobItem.objects.filter(job=job, status=ItemStatus.RUNNING).exists():
            return False
        return job_end_locked(job, JobStatus.CANCELLED, JobEndedReason.CANCELLED)


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
            job_end_locked(job, JobStatus.CANCELLED, JobEndedReason.CANCELLED)
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
