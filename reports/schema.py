"""The OpenAPI description of the account, usage and ledger operations (views in reports/api.py):
decorators only; their answers are declared once, in reports/serializers.py."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema

from project.openapi import PAGE_PARAMETERS, errors, page_of
from reports.serializers import AccountOutput, LedgerEntryOutput, UsageOutput

ACCOUNT = "account"

account_schema = extend_schema(
    tags=[ACCOUNT],
    summary="The key's account: plan, balance, live sessions",
    responses={
        200: AccountOutput,
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
        200: UsageOutput,
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
        200: page_of("LedgerPage", LedgerEntryOutput(many=True)),
        **errors(),
    },
)
