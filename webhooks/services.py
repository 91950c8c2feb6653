"""Webhook writes: events into the outbox, delivery claims and outcomes, endpoints.

Producers (sessions, jobs, billing) call `event_emit` inside the transaction of the change that
causes the event: the event and its deliveries commit or roll back with it, and the delivery
tasks are sent after commit. Tasks that were never sent (a crash between commit and send) and
retries that fall due are sent by the Beat sweep (`deliveries_due`).
"""

from __future__ import annotations

import base64
import logging
import random
import secrets as secrets_module
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from project.exceptions import InvalidInput, NotFound
from project.netpolicy import parse_address, policy
from webhooks import dispatch
from webhooks.delivery import SECRET_PREFIX, Outcome
from webhooks.events import EVENT_TYPES, JOB_FAILED, JOB_WEBHOOK_EVENTS, WEBHOOK_TEST
from webhooks.models import ALL_EVENTS, Delivery, DeliveryStatus, Endpoint, Event

logger = logging.getLogger(__name__)

URL_MAX_LENGTH = 2048


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets_module.token_bytes(24)).decode()


def _envelope(event: Event, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": event.pk, "type": event.type, "created_at": event.created_at.isoformat(), "data": data}


# Emit ------------------------------------------------------------------------------------------


def event_emit(
    *,
    account_id: int,
    type: str,
    data: dict[str, Any],
    job_id: str = "",
    idempotency_key: str | None = None,
    only_endpoint_id: str = "",
) -> str | None:
    """Record an event and one delivery per endpoint that wants it, in the caller's transaction.

    The account's endpoints that subscribe to `type`, plus the per-job endpoint of `job_id`. No
    endpoint: nothing is written. With `idempotency_key`, a second call is a no-op. Returns the
    event id, or None when nothing was recorded.
    """
    if only_endpoint_id:
        endpoints = list(Endpoint.objects.filter(pk=only_endpoint_id, account_id=account_id))
    else:
        scope = Q(job_id="")
        if job_id:
            scope |= Q(job_id=job_id)
        endpoints = [
            endpoint
            for endpoint in Endpoint.objects.filter(scope, account_id=account_id, enabled=True)
            if endpoint.wants(type)
        ]
    if not endpoints:
        return None
    now = timezone.now()
    event = Event(
        account_id=account_id, type=type, payload={}, idempotency_key=idempotency_key, created_at=now
    )
    event.payload = _envelope(event, data)
    if idempotency_key is None:
        event.save(force_insert=True)
    else:
        try:
            with transaction.atomic():  # a savepoint: a duplicate must not abort the caller's work
                event.save(force_insert=True)
        except IntegrityError:
            return None
    queued_until = now + timedelta(seconds=settings.WEBHOOK_QUEUED_LEASE_SECONDS)
    deliveries = Delivery.objects.bulk_create(
        [
            Delivery(event=event, endpoint=endpoint, next_attempt_at=now, queued_until=queued_until)
            for endpoint in endpoints
        ]
    )
    dispatch.deliveries_send([delivery.pk for delivery in deliveries])
    return event.pk


# Per-job endpoints -------------------------------------------------------------------------------


def job_endpoint_ensure(*, account_id: int, job_id: str, webhook: dict[str, Any]) -> None:
    """The endpoint of a job's own webhook (`POST /v1/jobs` `webhook`), made at its first event.

    The job's secret is the tenant's own string: its bytes are the HMAC key (verify with
    `standardwebhooks.Webhook(secret.encode())`).
    """
    if Endpoint.objects.filter(job_id=job_id).exists():
        return
    names = webhook.get("events") or ["page", "page_failed", "completed", "cancelled"]
    events = [JOB_WEBHOOK_EVENTS[name] for name in names if name in JOB_WEBHOOK_EVENTS]
    if "completed" in names:
        events.append(JOB_FAILED)  # the job's end, whichever way it ended (as before)
    secret = webhook.get("secret") or ""
    Endpoint.objects.create(
        account_id=account_id,
        job_id=job_id,
        url=webhook["url"],
        events=sorted(set(events)),
        secret=SECRET_PREFIX + base64.b64encode(secret.encode()).decode() if secret else "",
        description=f"webhook of job {job_id}",
    )


# Delivery ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    delivery_id: int
    attempt: int
    url: str
    msg_id: str
    body: bytes
    secrets: list[str]


def _attempt_lease() -> timedelta:
    # The attempt's hard time limit (workers/webhook_tasks.py: timeout + 15 s) and a margin: past
    # it, the worker that claimed it is gone.
    return timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 20)


def delivery_claim(*, delivery_id: int) -> Attempt | None:
    """Claim a due delivery for one attempt; None when it is not due, done, or being sent."""
    import json

    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(of=("self",))
            .select_related("event", "endpoint")
            .filter(pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(sending_until__isnull=True) | Q(sending_until__lt=now))
            .first()
        )
        if delivery is None:
            return None
        endpoint = delivery.endpoint
        disabled = not endpoint.enabled and delivery.event.type != WEBHOOK_TEST  # a ping goes anyway
        if disabled or delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            # Disabled meanwhile, or its last attempt's worker died: given up.
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = delivery.last_error or "failed"
            delivery.sending_until = None
            delivery.save(update_fields=["status", "last_error", "sending_until"])
            return None
        delivery.attempts += 1
        delivery.sending_until = now + _attempt_lease()
        delivery.queued_until = None
        delivery.save(update_fields=["attempts", "sending_until", "queued_until"])
    signing = [endpoint.secret]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_expires_at
        and endpoint.previous_secret_expires_at > now
    ):
        signing.append(endpoint.previous_secret)
    return Attempt(
        delivery_id=delivery.pk,
        attempt=delivery.attempts,
        url=endpoint.url,
        msg_id=delivery.event_id,
        body=json.dumps(delivery.event.payload, separators=(",", ":")).encode(),
        secrets=[s for s in signing if s],
    )


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt: WEBHOOK_RETRY_BACKOFF_SECONDS x 5^(n-1), +-20 % jitter,
    at most WEBHOOK_RETRY_MAX_DELAY_SECONDS; a receiver's Retry-After when it gives one. With the
    defaults (5 s, 9 attempts, 10 h) retries span about 25 hours."""
    cap = float(settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS)
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    base = float(settings.WEBHOOK_RETRY_BACKOFF_SECONDS * 5 ** max(attempts - 1, 0))
    jitter = random.uniform(0.8, 1.2)  # noqa: S311  (spreads retries; not a secret)
    return min(base * jitter, cap)


def delivery_record(*, attempt: Attempt, outcome: Outcome) -> str:
    """Store an attempt's outcome: delivered, due again later, or failed for good. Returns the
    delivery's new status. A 410 Gone disables the endpoint; so do WEBHOOK_DISABLE_AFTER_DAYS of
    failures without one success."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .filter(pk=attempt.delivery_id, status=DeliveryStatus.PENDING, attempts=attempt.attempt)
            .first()
        )
        if delivery is None:
            return ""
        endpoint = delivery.endpoint
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        delivery.last_latency_ms = outcome.latency_ms
        delivery.last_attempt_at = now
        delivery.sending_until = None
        if outcome.ok:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
        elif outcome.retryable and delivery.attempts < settings.WEBHOOK_MAX_ATTEMPTS:
            delivery.next_attempt_at = now + timedelta(
                seconds=retry_delay(delivery.attempts, outcome.retry_after)
            )
        else:
            delivery.status = DeliveryStatus.FAILED
        delivery.save()
        if outcome.ok:
            if endpoint.failing_since is not None:
                Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
        elif outcome.status_code == 410:
            _endpoint_disable(endpoint, reason="the receiver answered 410 Gone")
        elif endpoint.failing_since is None:
            Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
        elif now - endpoint.failing_since > timedelta(days=settings.WEBHOOK_DISABLE_AFTER_DAYS):
            _endpoint_disable(endpoint, reason=f"failing for {settings.WEBHOOK_DISABLE_AFTER_DAYS} days")
    return delivery.status


def _endpoint_disable(endpoint: Endpoint, *, reason: str) -> None:
    """Disable the endpoint and tell the account's owners, once (only the call that turns it off)."""
    turned_off = Endpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
        enabled=False, disabled_reason=reason, updated_at=timezone.now()
    )
    if turned_off:
        dispatch.owners_notify(
            endpoint.account_id,
            subject="Browserfleet: a webhook endpoint was disabled",
            body=(
                f"Your webhook endpoint {endpoint.url} ({endpoint.pk}) was disabled: {reason}.\n\n"
                "Events for it are no longer sent. Fix the receiver, then enable the endpoint again "
                "(PATCH /v1/webhooks/{id} with enabled=true); its delivery log shows what failed."
            ),
        )
    # What was still due for it will never go: the log shows it failed.
    Delivery.objects.filter(endpoint_id=endpoint.pk, status=DeliveryStatus.PENDING).exclude(
        sending_until__gt=timezone.now()
    ).update(status=DeliveryStatus.FAILED, last_error="failed")
    logger.warning("webhook endpoint %s disabled: %s", endpoint.pk, reason)


def delivery_abandon(*, attempt: Attempt, reason: str) -> str:
    """The attempt ran out of time (the task's soft limit): recorded like a timeout."""
    return delivery_record(
        attempt=attempt,
        outcome=Outcome(
            ok=False,
            status_code=None,
            error="failed",
            retryable=True,
            retry_after=None,
            latency_ms=settings.WEBHOOK_TIMEOUT_SECONDS * 1000,
            reason=reason,
        ),
    )


def deliveries_due(*, limit: int = 500, now: datetime | None = None) -> list[int]:
    """Deliveries to send now (never sent, a retry due, or a dead worker's claim expired), marked
    queued so that the next sweep does not send them again while they wait in the queue."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(queued_until__isnull=True) | Q(queued_until__lt=now))
            .filter(Q(sending_until__isnull=True) | Q(sending_until__lt=now))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        Delivery.objects.filter(pk__in=ids).update(
            queued_until=now + timedelta(seconds=settings.WEBHOOK_QUEUED_LEASE_SECONDS)
        )
    return ids


def webhooks_purge(*, now: datetime | None = None, batch: int = 5000) -> int:
    """Delete events (with their deliveries) older than WEBHOOK_RETENTION_DAYS, and per-job
    endpoints left without deliveries. Returns the number of events deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    ids = list(Event.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:batch])
    Event.objects.filter(pk__in=ids).delete()
    Endpoint.objects.exclude(job_id="").filter(created_at__lt=cutoff, deliveries__isnull=True).delete()
    return len(ids)


# Account endpoints -------------------------------------------------------------------------------


def _check_url(url: str) -> str:
    url = url.strip()
    if len(url) > URL_MAX_LENGTH:
        raise InvalidInput(f"url: at most {URL_MAX_LENGTH} characters.", code="invalid_url")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # e.g. an unclosed [IPv6 literal
        raise InvalidInput("url: not a URL.", code="invalid_url") from None
    if parts.scheme not in {"http", "https"} or not hostname:
        raise InvalidInput("url: an http or https URL with a host.", code="invalid_url")
    if parts.username or parts.password:
        raise InvalidInput(
            "url: credentials in the URL are not accepted; sign with the secret.", code="invalid_url"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidInput("url: the port is not a number from 1 to 65535.", code="invalid_url") from None
    try:
        address = parse_address(hostname)
    except ValueError:
        address = None  # a name: checked, and pinned, by the egress filter at each delivery
    if address is not None and not policy().address_allowed(address, port):
        raise InvalidInput(
            "url: private, loopback and link-local addresses are not allowed.", code="blocked_url"
        )
    return url


def _check_events(events: list[str]) -> list[str]:
    if ALL_EVENTS in events:
        return [ALL_EVENTS]
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown or not events:
        raise InvalidInput(
            f"events: unknown type(s) {', '.join(unknown)}; "
            f"use {ALL_EVENTS!r} or some of {', '.join(EVENT_TYPES)}."
            if unknown
            else "events: at least one type, or ['*'].",
            code="invalid_events",
        )
    return sorted(set(events))


def endpoint_create(
    *,
    account_id: int,
    max_endpoints: int,
    url: str,
    events: list[str],
    description: str = "",
    enabled: bool = True,
) -> tuple[Endpoint, str]:
    """A new endpoint and its secret (shown this once)."""
    url = _check_url(url)
    events = _check_events(events)
    with transaction.atomic():
        # Serialises creates of one account, so two at once cannot both pass the limit.
        list(Endpoint.objects.select_for_update().filter(account_id=account_id, job_id=""))
        if Endpoint.objects.filter(account_id=account_id, job_id="").count() >= max_endpoints:
            raise InvalidInput(
                f"Your plan allows {max_endpoints} webhook endpoints; delete one first.",
                code="webhook_endpoint_limit",
                extra={"limit": max_endpoints},
            )
        secret = new_secret()
        endpoint = Endpoint.objects.create(
            account_id=account_id,
            url=url,
            events=events,
            description=description,
            enabled=enabled,
            secret=secret,
        )
    return endpoint, secret


def endpoint_get(*, account_id: int, endpoint_id: str) -> Endpoint:
    endpoint = Endpoint.objects.filter(pk=endpoint_id, account_id=account_id, job_id="").first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


def endpoint_update(*, account_id: int, endpoint_id: str, changes: dict[str, Any]) -> Endpoint:
    endpoint = endpoint_get(account_id=account_id, endpoint_id=endpoint_id)
    if "url" in changes:
        endpoint.url = _check_url(changes["url"])
    if "events" in changes:
        endpoint.events = _check_events(changes["events"])
    if "description" in changes:
        endpoint.description = changes["description"]
    if "enabled" in changes:
        endpoint.enabled = changes["enabled"]
        if endpoint.enabled:
            endpoint.disabled_reason = ""
            endpoint.failing_since = None
    endpoint.save()
    return endpoint


def endpoint_delete(*, account_id: int, endpoint_id: str) -> None:
    endpoint_get(account_id=account_id, endpoint_id=endpoint_id).delete()


def endpoint_rotate(*, account_id: int, endpoint_id: str) -> tuple[Endpoint, str]:
    """A new secret; the old one keeps signing alongside for WEBHOOK_SECRET_OVERLAP_SECONDS."""
    with transaction.atomic():
        endpoint = (
            Endpoint.objects.select_for_update()
            .filter(pk=endpoint_id, account_id=account_id, job_id="")
            .first()
        )
        if endpoint is None:
            raise NotFound("No such webhook endpoint.")
        secret = new_secret()
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = timezone.now() + timedelta(
            seconds=settings.WEBHOOK_SECRET_OVERLAP_SECONDS
        )
        endpoint.secret = secret
        endpoint.save()
    return endpoint, secret


def endpoint_test(*, account_id: int, endpoint_id: str) -> str:
    """Send a `webhook.test` event to this endpoint only (enabled or not); returns its event id."""
    endpoint = endpoint_get(account_id=account_id, endpoint_id=endpoint_id)
    with transaction.atomic():
        event_id = event_emit(
            account_id=account_id,
            type=WEBHOOK_TEST,
            data={"endpoint_id": endpoint.pk},
            only_endpoint_id=endpoint.pk,
        )
    assert event_id is not None
    return event_id


def delivery_redeliver(*, account_id: int, delivery_id: int) -> Delivery:
    """Send a delivery again from its first attempt (same event id), whatever its status."""
    if not 0 < delivery_id < 2**63:
        raise NotFound("No such delivery.")
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(of=("self",))
            .filter(pk=delivery_id, endpoint__account_id=account_id, endpoint__job_id="")
            .first()
        )
        if delivery is None:
            raise NotFound("No such delivery.")
        if (
            delivery.status == DeliveryStatus.PENDING
            and delivery.sending_until
            and delivery.sending_until > timezone.now()
        ):
            return delivery  # being sent right now
        now = timezone.now()
        delivery.status = DeliveryStatus.PENDING
        delivery.attempts = 0
        delivery.next_attempt_at = now
        delivery.queued_until = now + timedelta(seconds=settings.WEBHOOK_QUEUED_LEASE_SECONDS)
        delivery.delivered_at = None
        delivery.save()
        dispatch.deliveries_send([delivery.pk])
    return delivery
