"""The OpenAPI description of the account, usage and ledger endpoints (views in reports/api.py)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers

from billing.models import LedgerEntry
from project.openapi import PAGE_PARAMETERS, errors, page_of

ACCOUNT = "account"

_PLAN = inline_serializer(
    "Plan",
    {
        "name": serializers.CharField(),
        "max_concurrent_sessions": serializers.IntegerField(allow_null=True, help_text="null: unlimited."),
        "max_lifetime_seconds": serializers.IntegerField(),
        "requests_per_minute": serializers.IntegerField(allow_null=True),
    },
)

account_schema = extend_schema(
    tags=[ACCOUNT],
    summary="The key's account: plan, balance, live sessions",
    responses={
        200: inline_serializer(
            "Account",
            {
                "id": serializers.IntegerField(),
                "name": serializers.CharField(),
                "plan": _PLAN,
                "balance": serializers.IntegerField(help_text="Credits."),
                "live_sessions": serializers.IntegerField(),
            },
        ),
        **errors(),
    },
)

_WHEN = "ISO 8601 date-time; without an offset it is UTC."
usage_schema = extend_schema(
    tags=[ACCOUNT],
    summary="Spending over a period, by kind, action type and day or hour",
    parameters=[
        OpenApiParameter("from", OpenApiTypes.DATETIME, description=_WHEN + " Default: `to` minus 30 days."),
        OpenApiParameter(
            "to", OpenApiTypes.DATETIME, description=_WHEN + " Default: now. At most a year after `from`."
        ),
        OpenApiParameter("group_by", OpenApiTypes.STR, enum=["day", "hour"], description="Default day."),
    ],
    responses={
        200: inline_serializer(
            "Usage",
            {
                "from": serializers.CharField(),
                "to": serializers.CharField(),
                "group_by": serializers.ChoiceField(choices=["day", "hour"]),
                "credits_spent": serializers.IntegerField(),
                "credits_by_kind": serializers.DictField(child=serializers.IntegerField()),
                "credits_by_action_type": serializers.DictField(child=serializers.IntegerField()),
                "session_minutes": serializers.IntegerField(),
                "job_pages": serializers.IntegerField(
                    help_text="Batch job page tries charged (each try costs the price)."
                ),
                "sessions": serializers.IntegerField(),
                "actions": serializers.IntegerField(),
                "buckets": inline_serializer(
                    "UsageBucket",
                    {
                        "start": serializers.CharField(),
                        "credits": serializers.IntegerField(),
                        "session_minutes": serializers.IntegerField(),
                    },
                    many=True,
                ),
            },
        ),
        **errors(),
    },
    examples=[
        OpenApiExample(
            "one day",
            value={
                "from": "2026-11-01T00:00:00Z",
                "to": "2026-11-02T00:00:00Z",
                "group_by": "day",
                "credits_spent": 4,
                "credits_by_kind": {"action": 3, "session_time": 1},
                "credits_by_action_type": {"html": 2, "wait": 1},
                "session_minutes": 1,
                "job_pages": 0,
                "sessions": 1,
                "actions": 2,
                "buckets": [{"start": "2026-11-01T00:00:00Z", "credits": 4, "session_minutes": 1}],
            },
            response_only=True,
        )
    ],
)

ledger_schema = extend_schema(
    tags=[ACCOUNT],
    summary="The account's ledger lines, newest first",
    parameters=PAGE_PARAMETERS,
    responses={
        200: page_of(
            "LedgerPage",
            inline_serializer(
                "LedgerEntry",
                {
                    "id": serializers.IntegerField(),
                    "kind": serializers.ChoiceField(choices=LedgerEntry.Kind.values),
                    "amount": serializers.IntegerField(help_text="Negative: a charge."),
                    "balance_after": serializers.IntegerField(),
                    "reason": serializers.CharField(),
                    "session_id": serializers.CharField(allow_null=True),
                    "action_id": serializers.CharField(allow_null=True),
                    "created_at": serializers.CharField(),
                },
                many=True,
            ),
        ),
        **errors(),
    },
)
