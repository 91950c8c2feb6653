"""Bytes a job's browsers moved through the operator's proxy pool: charged per started MB at the
`proxy_mb` price, exactly once (docs/proxies.md).

The egress filter keeps a running total per job browser (its meter is the browser's id). Whoever
reads one (the worker when it stops the browser, the reconcile as it goes) hands it here: the
browser's row keeps the largest total seen, the job's total is the sum over its browsers, and the
charge brings the job's charged MB up to that sum, keyed by the MB total it reaches (as a
session's, sessions/proxy_billing.py), so the same total handed over twice charges nothing more.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Greatest

from billing.services import job_proxy_charge
from jobs.models import Job, JobBrowser, JobEndedReason, JobStatus
from jobs.services.finishing import job_end_locked
from project.db import retry_on_conflict
from project.exceptions import InsufficientCredits
from sessions.proxy_billing import mb_started

logger = logging.getLogger(__name__)


def job_uses_pool(job: Job) -> bool:
    return job.proxy_config is not None and bool(job.spec.get("use_advanced_proxy"))


@retry_on_conflict
def job_proxy_bill(*, browser_id: str, total_bytes: int) -> bool:
    """Record the browser's pool bytes (its running total) and charge the job's new MB.

    False when the balance cannot cover them (nothing charged, logged; the next total handed over
    tries again). Lock order: the job row, then the balance (inside the charge).
    """
    job_id = JobBrowser.objects.filter(pk=browser_id).values_list("job_id", flat=True).first()
    if job_id is None:
        return True
    with transaction.atomic():
        job = Job.objects.select_for_update(no_key=True).get(pk=job_id)
        JobBrowser.objects.filter(pk=browser_id).update(proxy_bytes=Greatest("proxy_bytes", total_bytes))
        total = JobBrowser.objects.filter(job_id=job_id).aggregate(total=Sum("proxy_bytes"))["total"] or 0
        if total <= job.proxy_bytes:
            return True
        due = mb_started(total)
        try:
            job_proxy_charge(
                account_id=job.account_id,
                job_id=job.pk,
                upto_mb=due,
                new_mb=due - job.proxy_billed_mb,
                api_key_id=job.api_key_id,
            )
        except InsufficientCredits:
            logger.warning("job %s: the balance cannot cover its proxy bytes", job_id)
            transaction.set_rollback(True)
            return False
        Job.objects.filter(pk=job.pk).update(proxy_bytes=total, proxy_billed_mb=max(due, job.proxy_billed_mb))
    return True


def job_end_unpaid(*, job_id: str) -> bool:
    """End a running job whose balance cannot cover its pool bytes (the reconcile calls this when
    job_proxy_bill said so): `failed`, `credits_exhausted`; queued pages are skipped, its hold
    released, its browsers stop at their next heartbeat. The bytes stay uncharged (logged)."""
    with transaction.atomic():
        job = Job.objects.select_for_update(no_key=True).filter(pk=job_id).first()
        if job is None or job.status != JobStatus.RUNNING:
            return False
        return job_end_locked(
            job,
            JobStatus.FAILED,
            JobEndedReason.CREDITS_EXHAUSTED,
            error="The credit balance cannot cover the bytes through the advanced proxy.",
        )
