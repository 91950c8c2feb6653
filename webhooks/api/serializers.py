"""Input and output serializers of /v1/webhooks. Each output is declared once: it renders the
answer and drf-spectacular documents it from the same class."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from webhooks.events import EVENT_TYPES
from webhooks.models import ALL_EVENTS, Delivery, DeliveryStatus, Endpoint
from webhooks.services import URL_MAX_LENGTH

EVENT_CHOICES = [ALL_EVENTS, *EVENT_TYPES]


class EndpointInput(serializers.Serializer[Any]):
    url = serializers.CharField(max_length=URL_MAX_LENGTH, help_text="An http(s) URL that accepts POSTs.")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_CHOICES),
        default=[ALL_EVENTS],
        min_length=1,
        max_length=len(EVENT_CHOICES),
        help_text='Event types to receive, or `["*"]` for all (the default).',
    )
    description = serializers.CharField(max_length=500, default="", allow_blank=True)
    enabled = serializers.BooleanField(default=True)


class EndpointPatchInput(EndpointInput):
    url = serializers.CharField(max_length=URL_MAX_LENGTH, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_CHOICES),
        required=False,
        min_length=1,
        max_length=len(EVENT_CHOICES),
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class EndpointOutput(serializers.ModelSerializer[Endpoint]):
    disabled_reason = serializers.CharField(
        help_text="Why the service disabled it (410 Gone, failing for days)."
    )

    class Meta:
        model = Endpoint
        fields = [
            "id",
            "url",
            "events",
            "description",
            "enabled",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]


class EndpointSecretOutput(EndpointOutput):
    secret = serializers.SerializerMethodField(help_text="The signing secret (`whsec_...`), shown only now.")
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="After a rotation: the old secret signs alongside until then."
    )

    class Meta(EndpointOutput.Meta):
        fields = [*EndpointOutput.Meta.fields, "secret", "previous_secret_expires_at"]

    def get_secret(self, endpoint: Endpoint) -> str:
        return str(self.context["secret"])


class EndpointListOutput(serializers.Serializer[Any]):
    results = EndpointOutput(many=True)


class TestOutput(serializers.Serializer[Any]):
    event_id = serializers.CharField(
        help_text="The id of the `webhook.test` event (the `webhook-id` header)."
    )


class DeliveryOutput(serializers.ModelSerializer[Delivery]):
    event_id = serializers.CharField()
    event_type = serializers.CharField(source="event.type")
    endpoint_id = serializers.CharField()
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    status_code = serializers.IntegerField(
        source="last_status_code", allow_null=True, help_text="The receiver's last answer."
    )
    error = serializers.CharField(
        source="last_error", help_text="`HTTP <code>` or `failed` (no answer); empty when delivered."
    )
    latency_ms = serializers.IntegerField(source="last_latency_ms", allow_null=True)
    next_attempt_at = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "endpoint_id",
            "status",
            "attempts",
            "status_code",
            "error",
            "latency_ms",
            "next_attempt_at",
            "created_at",
            "last_attempt_at",
            "delivered_at",
        ]

    def get_next_attempt_at(self, delivery: Delivery) -> str | None:
        if delivery.status != DeliveryStatus.PENDING:
            return None
        return serializers.DateTimeField().to_representation(delivery.next_attempt_at)


class DeliveryPageOutput(serializers.Serializer[Any]):
    results = DeliveryOutput(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for older deliveries.")
