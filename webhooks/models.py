"""Webhook endpoints, the events they receive (the outbox) and one delivery per event and endpoint.

Events are written in the transaction of the change that causes them (`webhooks.services
.event_emit`): a change that rolls back leaves no event, a crash after commit loses none (the
Beat sweep sends what is due). Accounts are referred to by model label: this app sits below
billing, so that billing, sessions and jobs can all write events in their own transactions.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q

ALL_EVENTS = "*"


def _endpoint_id() -> str:
    return "whe_" + secrets.token_hex(12)


def _event_id() -> str:
    return "evt_" + secrets.token_hex(12)


class Endpoint(models.Model):
    """Where an account's events go. A per-job endpoint (`job_id` set) is the webhook given to
    `POST /v1/jobs`: it receives only that job's events and is not listed under /v1/webhooks."""

    id = models.CharField(primary_key=True, max_length=40, default=_endpoint_id, editable=False)
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=2048)
    events = models.JSONField(default=list)  # event types, or ["*"]
    description = models.CharField(max_length=500, blank=True, default="")
    enabled = models.BooleanField(default=True)
    # Why the service disabled it (410 Gone, failing for days); empty when enabled or disabled by
    # its owner.
    disabled_reason = models.CharField(max_length=100, blank=True, default="")
    # "whsec_" + base64 of the key (Standard Webhooks); empty: deliveries are not signed.
    secret = models.CharField(max_length=200, blank=True, default="")
    # After a rotation the old secret signs alongside the new one until this time.
    previous_secret = models.CharField(max_length=200, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    job_id = models.CharField(max_length=40, blank=True, default="", db_index=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["account"], name="webhook_endpoint_live", condition=Q(enabled=True, job_id="")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pk} {self.url}"

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.events or event_type in self.events


class Event(models.Model):
    """One thing that happened to an account, as its receivers get it: the envelope
    `{id, type, created_at, data}` is `payload`, sent byte for byte on every attempt."""

    id = models.CharField(primary_key=True, max_length=40, default=_event_id, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="webhook_events")
    type = models.CharField(max_length=40)
    payload = models.JSONField()
    # A producer that may run twice (a redelivered task) names its event: the second is a no-op.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.pk} {self.type}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # given up (retries exhausted, a permanent answer, or redirected)


class Delivery(models.Model):
    """One event to one endpoint: its attempts, its last outcome and when it is next due.

    Claimed by a conditional UPDATE (`sending_until`, the attempt's hard deadline), so two tasks
    for one delivery never post at once; a worker killed mid-attempt leaves a claim that expires,
    after which the Beat sweep sends it again (at-least-once, deduplicated by the event id).
    """

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # Sent to the queue until then (the sweep does not send it again before).
    queued_until = models.DateTimeField(null=True, blank=True)
    # An attempt holds it until then (its hard deadline and a margin).
    sending_until = models.DateTimeField(null=True, blank=True)
    # Coarse on purpose (`HTTP 503`, `failed`): never a socket error, which would tell a tenant
    # what listens on the worker's network.
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=100, blank=True, default="")
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_once")]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="webhook_delivery_due", condition=Q(status="pending")
            ),
            models.Index(fields=["endpoint", "-id"], name="webhook_delivery_log"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} {self.status}"
