"""Celery tasks of webhook deliveries (queue `webhooks`, its own worker): adapters over
webhooks/services.py and webhooks/delivery.py.

An attempt has a hard deadline: the soft time limit ends a receiver that trickles its answer
(recorded as a failed attempt, retried later); the hard limit kills a child that ignores it, and
then the delivery's claim expires and the Beat sweep sends it again. Nothing stays `pending`
without a next attempt.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from accounts.notifications import owners_email
from sessions.expiry_warnings import sessions_warn_expiring
from webhooks import delivery as http
from webhooks import dispatch
from webhooks import services as webhooks

logger = logging.getLogger(__name__)

_SOFT_LIMIT = settings.WEBHOOK_TIMEOUT_SECONDS + 5


@shared_task(acks_late=True, soft_time_limit=_SOFT_LIMIT, time_limit=_SOFT_LIMIT + 10)
def webhook_deliver(delivery_id: int) -> str:
    """One attempt of one delivery (nothing when it is not due or someone else is sending it)."""
    attempt = webhooks.delivery_claim(delivery_id=delivery_id)
    if attempt is None:
        return ""
    timestamp = int(time.time())
    headers = http.headers_for(
        msg_id=attempt.msg_id, timestamp=timestamp, body=attempt.body, secrets=attempt.secrets
    )
    try:
        outcome = http.post(url=attempt.url, body=attempt.body, headers=headers)
    except SoftTimeLimitExceeded:
        logger.info("webhook delivery %s: attempt %s ran out of time", delivery_id, attempt.attempt)
        return webhooks.delivery_abandon(attempt=attempt, reason="the attempt's deadline passed")
    if not outcome.ok:
        logger.info("webhook delivery %s attempt %s: %s", delivery_id, attempt.attempt, outcome.reason)
    return webhooks.delivery_record(attempt=attempt, outcome=outcome)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def webhooks_sweep() -> int:
    """Beat: send the deliveries that are due (retries, sends lost to a crash, dead workers')."""
    ids = webhooks.deliveries_due()
    for delivery_id in ids:
        webhook_deliver.apply_async((delivery_id,))
    return len(ids)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def sessions_expiring() -> int:
    """Beat: session.expiring for sessions that end within a minute (accounts with webhooks)."""
    return sessions_warn_expiring()


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def webhooks_purge() -> int:
    """Beat: forget events and deliveries older than WEBHOOK_RETENTION_DAYS."""
    return webhooks.webhooks_purge()


# Retried on SMTP trouble a few times: an alert lost to a blip is worse than a late one.
@shared_task(
    acks_late=True,
    soft_time_limit=60,
    time_limit=90,
    autoretry_for=(OSError,),
    retry_backoff=30,
    max_retries=5,
)
def owners_notify(account_id: int, subject: str, body: str) -> int:
    """Email the account's owners (billing's low-balance alerts, a disabled webhook endpoint)."""
    return owners_email(account_id=account_id, subject=subject, body=body)


assert webhook_deliver.name == dispatch.WEBHOOK_DELIVER
assert owners_notify.name == dispatch.OWNERS_NOTIFY
