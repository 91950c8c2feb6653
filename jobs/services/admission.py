"""Admission: browsers for jobs, within the plan's slots (shared with sessions), and the job
browsers' leases."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from jobs.models import ItemStatus, Job, JobBrowser, JobItem, JobStatus
from sessions.location import BrowserLocation
from sessions.services import account_browsers_in_use


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
        # The plan row is read, not locked (of=): every account of a plan would wait on it.
        # NO KEY, as session creates: FOR UPDATE also blocked the foreign-key checks (FOR KEY
        # SHARE) of ledger lines committing meanwhile, and a job cancel releasing its hold
        # deadlocked with this (tests/jobs/test_job_admission_locks.py).
        account = (
            Account.objects.select_for_update(no_key=True, of=("self",))
            .select_related("plan")
            .only("id", "plan__name", "plan__max_concurrent_sessions", "plan__max_running_jobs")
            .get(pk=account_id)
        )
        plan = account.plan
        free = (
            None
            if plan.max_concurrent_sessions is None
            else plan.max_concurrent_sessions - account_browsers_in_use(account_id=account_id)
        )
        running_jobs = Job.objects.filter(
            account_id=account_id, status__in=(JobStatus.RUNNING, JobStatus.CANCELLING)
        ).count()
        # Only the columns admission reads: never the tenant's spec, webhook or skipped URLs.
        for job in (
            Job.objects.filter(account_id=account_id, status__in=(JobStatus.QUEUED, JobStatus.RUNNING))
            .only("pk", "status", "max_concurrency", "per_domain_concurrency", "created_at")
            .order_by("created_at")
        ):
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
