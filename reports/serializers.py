"""The answers of the account's own endpoints, each declared once: these render them and
drf-spectacular documents them (reports/schema.py only decorates the views)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from billing.models import LedgerEntry
from project.fields import IsoDateTimeField


@extend_schema_serializer(component_name="Plan")
class PlanOutput(serializers.Serializer[Any]):
    name = serializers.CharField()
    max_concurrent_sessions = serializers.IntegerField(allow_null=True, help_text="null: unlimited.")
    max_lifetime_seconds = serializers.IntegerField()
    requests_per_minute = serializers.IntegerField(allow_null=True)


@extend_schema_serializer(component_name="Account")
class AccountOutput(serializers.Serializer[Any]):
    # Renders {"account", "balance", "live_sessions"}.

    id = serializers.IntegerField(source="account.pk")
    name = serializers.CharField(source="account.name")
    plan = PlanOutput(source="account.plan")
    balance = serializers.IntegerField(help_text="Credits.")
    live_sessions = serializers.IntegerField()


@extend_schema_serializer(component_name="UsageBucket")
class UsageBucketOutput(serializers.Serializer[Any]):
    start = IsoDateTimeField()
    credits = serializers.IntegerField()
    session_minutes = serializers.IntegerField()


@extend_schema_serializer(component_name="UsageByApiKey")
class UsageByApiKeyOutput(serializers.Serializer[Any]):
    api_key_id = serializers.IntegerField(
        allow_null=True, help_text="null: charges made without a key (or before keys were recorded)."
    )
    prefix = serializers.CharField(allow_null=True, help_text="The key's visible prefix.")
    name = serializers.CharField(allow_null=True)
    credits = serializers.IntegerField()


@extend_schema_serializer(component_name="Usage")
class UsageOutput(serializers.Serializer[Any]):
    # Renders reports.usage.usage_report's dict.

    # `from` is a Python keyword: declared below under its wire name.
    to = IsoDateTimeField()
    group_by = serializers.ChoiceField(choices=["day", "hour"])
    credits_spent = serializers.IntegerField()
    credits_by_kind = serializers.DictField(child=serializers.IntegerField())
    credits_by_action_type = serializers.DictField(child=serializers.IntegerField())
    credits_by_api_key = UsageByApiKeyOutput(
        many=True, help_text="Spending by the API key it was charged to."
    )
    api_key = serializers.IntegerField(allow_null=True, help_text="The `api_key` filter, if one was given.")
    session_minutes = serializers.IntegerField()
    job_pages = serializers.IntegerField(help_text="Batch job pages charged.")
    proxy_mb = serializers.IntegerField(
        help_text=(
            "Started MB (10^6 bytes, both ways) charged through the operator's proxy pool "
            "(use_advanced_proxy), for the sessions and batch jobs created in the window; a "
            "tenant's own proxies are not charged for bytes."
        )
    )
    sessions = serializers.IntegerField()
    actions = serializers.IntegerField()
    buckets = UsageBucketOutput(many=True)

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        return {"from": IsoDateTimeField(), **super().get_fields()}


@extend_schema_serializer(component_name="LowBalanceAlert")
class LowBalanceAlertOutput(serializers.Serializer[Any]):
    # Renders billing.alerts.LowBalanceThreshold.
    threshold = serializers.IntegerField(
        source="credits",
        help_text="The threshold in force, in credits: a charge that takes the balance below it sends "
        "`credits.low` to the account's webhooks and an email to its owners (0: off).",
    )
    percent = serializers.IntegerField(
        allow_null=True,
        help_text="Set: the threshold is this percent of the last top-up, recomputed at each.",
    )
    last_topup = serializers.IntegerField(help_text="Credits of the last top-up.")


class LowBalanceAlertInput(serializers.Serializer[Any]):
    credits = serializers.IntegerField(
        required=False, min_value=0, max_value=10**12, help_text="An absolute threshold (0: off)."
    )
    percent = serializers.IntegerField(
        required=False, min_value=1, max_value=100, help_text="A percent of the last top-up."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("credits" in attrs) == ("percent" in attrs):
            raise serializers.ValidationError("Give either credits or percent.")
        return attrs


@extend_schema_serializer(component_name="LedgerEntry")
class LedgerEntryOutput(serializers.Serializer[LedgerEntry]):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=LedgerEntry.Kind.values)
    amount = serializers.IntegerField(help_text="Negative: a charge.")
    balance_after = serializers.IntegerField()
    reason = serializers.CharField()
    session_id = serializers.CharField(allow_null=True)
    action_id = serializers.CharField(source="action.public_id", allow_null=True)
    api_key_id = serializers.IntegerField(allow_null=True, help_text="The API key it was charged to.")
    created_at = IsoDateTimeField()
