"""Celery tasks of batch jobs: adapters that take ids, re-fetch rows and call one service.

Queue `jobs` (job browsers), apart from `actions`; the short bookkeeping runs on `lifecycle`.
Webhook deliveries are workers/webhook_tasks.py's, on their own queue.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from jobs import services as jobs
from jobs.screenshots import job_screenshots_delete
from workers.job_runner import job_browser_stop, job_browser_work

logger = logging.getLogger(__name__)


def _start_browsers(browser_ids: list[str]) -> None:
    for browser_id in browser_ids:
        job_browser_run.delay(browser_id)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def jobs_dispatch() -> int:
    """Give waiting jobs their browsers (after a submit, and from the tick)."""
    new = jobs.jobs_admit()
    _start_browsers(new)
    return len(new)


# A slice works JOB_TASK_SLICE_SECONDS and then finishes its page (page_timeout_seconds at most,
# 120 s) before it returns.
_SLICE_LIMIT = settings.JOB_TASK_SLICE_SECONDS + 120 + settings.BROWSER_START_TIMEOUT_SECONDS + 60


@shared_task(acks_late=True, soft_time_limit=_SLICE_LIMIT, time_limit=_SLICE_LIMIT + 30)
def job_browser_run(browser_id: str) -> None:
    """One slice of a job browser's work; queues itself again while its job has pages left."""
    if job_browser_work(browser_id=browser_id):
        job_browser_run.delay(browser_id)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def jobs_tick() -> dict[str, int]:
    """Beat: lost pages back to the queue, lost browsers stopped, idle jobs finished, waiting
    jobs given browsers."""
    tick = jobs.jobs_tick()
    stopped = 0
    for browser_id, location in tick.browsers_lost + jobs.job_browsers_unreleased(
        older_than_seconds=settings.JOB_BROWSER_LEASE_SECONDS
    ):
        try:
            job_browser_stop(browser_id=browser_id, handle=location)
            stopped += 1
        except Exception:
            logger.exception("job browser %s: stop failed", browser_id)
    new = jobs.jobs_admit()
    _start_browsers(new)
    return {
        "items_requeued": tick.items_requeued,
        "browsers_stopped": stopped,
        "jobs_finished": tick.jobs_finished,
        "browsers_started": len(new),
    }


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def jobs_purge() -> int:
    """Beat: delete jobs whose results expired, with their screenshots."""
    names = jobs.jobs_purge_expired()
    job_screenshots_delete(names)
    return len(names)
