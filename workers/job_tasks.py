"""Celery tasks of batch jobs: adapters that take ids, re-fetch rows and call one service.

Queues: `jobs` (job browsers, dispatch, the Beat tick and purge) and `webhooks` (deliveries,
so that a slow receiver never delays pages). Both are apart from `actions`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request

from celery import shared_task
from django.conf import settings

from jobs import services as jobs
from jobs.screenshots import job_screenshots_delete
from workers.job_runner import job_browser_stop, job_browser_work

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Browserfleet-Signature"


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


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@shared_task(bind=True, acks_late=True, soft_time_limit=60, time_limit=90, max_retries=None)
def webhook_deliver(self, delivery_id: int) -> None:  # type: ignore[no-untyped-def]
    """POST one event, signed; retried with backoff up to WEBHOOK_MAX_ATTEMPTS, then failed
    (visible on the job). A 2xx is delivered; anything else is retried."""
    target = jobs.webhook_target(delivery_id=delivery_id)
    if target is None:
        return
    delivery, hook = target
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    request = urllib.request.Request(hook["url"], data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", "Browserfleet-Webhook/1")
    request.add_header("X-Browserfleet-Event", delivery.event)
    request.add_header("X-Browserfleet-Delivery", str(delivery.pk))
    if hook.get("secret"):
        request.add_header(SIGNATURE_HEADER, webhook_signature(hook["secret"], body))
    status_code: int | None = None
    error = ""
    try:
        with urllib.request.urlopen(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            status_code = response.status
    except urllib.error.HTTPError as exc:
        status_code, error = exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        error = str(getattr(exc, "reason", exc))[:500]
    ok = status_code is not None and 200 <= status_code < 300
    final = ok or delivery.attempts + 1 >= settings.WEBHOOK_MAX_ATTEMPTS
    jobs.webhook_attempted(delivery_id=delivery_id, ok=ok, status_code=status_code, error=error, final=final)
    if not final:
        delay = settings.WEBHOOK_RETRY_BACKOFF_SECONDS * 2**delivery.attempts
        webhook_deliver.apply_async((delivery_id,), countdown=min(delay, 3600))
