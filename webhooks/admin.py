"""Operators see endpoints with their failure rate and the delivery log; never a secret."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from webhooks.models import Delivery, DeliveryStatus, Endpoint


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Endpoint)
class EndpointAdmin(_ReadOnly, admin.ModelAdmin[Endpoint]):
    list_display = [
        "id",
        "account",
        "url",
        "enabled",
        "disabled_reason",
        "job_id",
        "deliveries",
        "failure_rate",
    ]
    list_filter = ["enabled"]
    search_fields = ["id", "url", "account__name", "job_id"]
    list_select_related = ["account"]
    # The signing secrets are the tenant's: never shown, not even to staff.
    exclude = ["secret", "previous_secret"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Endpoint]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                settled=Count("deliveries", filter=~Q(deliveries__status=DeliveryStatus.PENDING)),
                failed=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
            )
        )

    @admin.display(description="deliveries (7 days)")
    def deliveries(self, endpoint: Any) -> int:
        return int(endpoint.settled)

    @admin.display(description="failure rate")
    def failure_rate(self, endpoint: Any) -> str:
        return f"{endpoint.failed / endpoint.settled:.0%}" if endpoint.settled else "-"


@admin.register(Delivery)
class DeliveryAdmin(_ReadOnly, admin.ModelAdmin[Delivery]):
    list_display = [
        "id",
        "endpoint",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "last_latency_ms",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["endpoint__id", "event__id", "event__type"]
    list_select_related = ["endpoint", "event"]
    show_full_result_count = False
