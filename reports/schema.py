"""The OpenAPI description of the account, usage and ledger operations (views in reports/api.py):
decorators only; their answers are declared once, in reports/serializers.py."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema

from project.openapi import PAGE_PARAMETERS, errors, page_of
from reports.serializers import (
    AccountOutput,
    LedgerEntryOutput,
    LowBalanceAlertInput,
    LowBalanceAlertOutput,
    UsageOutput,
)

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
        OpenApiParameter(
            "api_key",
            OpenApiTypes.INT,
            description="Only what was charged to this API key of the account (its id, as in "
            "`credits_by_api_key`); another account's key is a 404.",
        ),
    ],
    responses={
        200: UsageOutput,
        **errors(404),
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
                "credits_by_api_key": [
                    {"api_key_id": 7, "prefix": "bf_Xk2p9QaZ", "name": "default", "credits": 4}
                ],
                "api_key": None,
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

alert_get_schema = extend_schema(
    tags=[ACCOUNT],
    summary="The low-balance alert threshold (credits.low webhooks and owners' email)",
    responses={200: LowBalanceAlertOutput, **errors()},
)

alert_set_schema = extend_schema(
    tags=[ACCOUNT],
    summary="Set the low-balance alert threshold: absolute credits, or a percent of the last top-up",
    request=LowBalanceAlertInput,
    responses={200: LowBalanceAlertOutput, **errors(400)},
    examples=[
        OpenApiExample("absolute", value={"credits": 500}, request_only=True),
        OpenApiExample("20 % of the last top-up", value={"percent": 20}, request_only=True),
    ],
)
