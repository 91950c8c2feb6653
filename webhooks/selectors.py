"""Webhook reads: the delivery log, a job webhook's summary, failure rates for operators."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from webhooks.models import Delivery, DeliveryStatus, Endpoint


@dataclass(frozen=True)
class JobWebhookSummary:
    failures: int
    last_error: str


def job_webhook_summary(*, job_id: str) -> JobWebhookSummary:
    """Deliveries of a job's own webhook that failed for good, and the latest error text."""
    deliveries = Delivery.objects.filter(endpoint__job_id=job_id)
    failed = deliveries.filter(status=DeliveryStatus.FAILED).count()
    last_error = (
        deliveries.exclude(last_error="")
        .order_by("-last_attempt_at", "-pk")
        .values_list("last_error", flat=True)
        .first()
    )
    return JobWebhookSummary(failures=failed, last_error=last_error or "")


def endpoints_of(*, account_id: int) -> QuerySet[Endpoint]:
    return Endpoint.objects.filter(account_id=account_id, job_id="").order_by("created_at", "pk")


def deliveries_of(*, endpoint_id: str) -> QuerySet[Delivery]:
    """The delivery log of one endpoint, newest first (cursor: the delivery id)."""
    return Delivery.objects.filter(endpoint_id=endpoint_id).select_related("event").order_by("-pk")


@dataclass(frozen=True)
class DeliveryHealth:
    pending: int
    delivered: int
    failed: int
    endpoints_failing: int

    @property
    def failure_rate(self) -> float:
        settled = self.delivered + self.failed
        return round(self.failed / settled, 4) if settled else 0.0


def delivery_health(*, hours: int = 24) -> DeliveryHealth:
    """For operators: deliveries of the last `hours` by status, endpoints currently failing."""
    since = timezone.now() - timedelta(hours=hours)
    counts = Delivery.objects.filter(created_at__gte=since).aggregate(
        pending=Count("id", filter=Q(status=DeliveryStatus.PENDING)),
        delivered=Count("id", filter=Q(status=DeliveryStatus.DELIVERED)),
        failed=Count("id", filter=Q(status=DeliveryStatus.FAILED)),
    )
    failing = Endpoint.objects.filter(enabled=True, failing_since__isnull=False).count()
    return DeliveryHealth(
        pending=counts["pending"],
        delivered=counts["delivered"],
        failed=counts["failed"],
        endpoints_failing=failing,
    )
