"""The account's own view over HTTP: GET /v1/account, /v1/usage and /v1/ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.urls import path
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_account
from accounts.models import ApiKey
from billing.alerts import low_threshold_get, low_threshold_set
from billing.models import LedgerEntry
from billing.selectors import balance_of
from project.exceptions import InvalidInput, NotFound
from project.pagination import paginate
from reports import schema
from reports.serializers import (
    AccountOutput,
    LedgerEntryOutput,
    LowBalanceAlertInput,
    LowBalanceAlertOutput,
    UsageOutput,
)
from reports.usage import usage_report
from sessions.selectors import live_session_count


class AccountView(APIView):
    @schema.account_schema
    def get(self, request: Request) -> Response:
        account = request_account(request)
        return Response(
            AccountOutput(
                {
                    "account": account,
                    "balance": balance_of(account_id=account.pk),
                    "live_sessions": live_session_count(account_id=account.pk),
                }
            ).data
        )


def _when(request: Request, name: str, default: datetime) -> datetime:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = parse_datetime(raw)
    except ValueError:  # well-formed but impossible, e.g. February 30th
        value = None
    if value is None:
        raise InvalidInput(f"{name} must be an ISO 8601 date-time, e.g. 2026-01-31T00:00:00Z.")
    return value if value.tzinfo else timezone.make_aware(value, UTC)


def _api_key_filter(request: Request, *, account_id: int) -> int | None:
    raw = request.query_params.get("api_key")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput("api_key must be the id of one of the account's API keys.")
    if not ApiKey.objects.filter(pk=int(raw), account_id=account_id).exists():
        raise NotFound("No such API key.")
    return int(raw)


class UsageView(APIView):
    """?from=&to= (ISO 8601; default the last 30 days) &group_by=day|hour."""

    @schema.usage_schema
    def get(self, request: Request) -> Response:
        end = _when(request, "to", timezone.now())
        start = _when(request, "from", end - timedelta(days=30))
        group_by = request.query_params.get("group_by", "day")
        if group_by not in ("day", "hour"):
            raise InvalidInput("group_by must be day or hour.")
        if start >= end or end - start > timedelta(days=366):
            raise InvalidInput("from must be before to, at most a year apart.")
        account = request_account(request)
        api_key_id = _api_key_filter(request, account_id=account.pk)
        report = usage_report(
            account_id=account.pk, start=start, end=end, group_by=group_by, api_key_id=api_key_id
        )
        return Response(UsageOutput(report).data)


class LowBalanceAlertView(APIView):
    """The account's low-balance threshold: the same setting as the console's Billing page."""

    @schema.alert_get_schema
    def get(self, request: Request) -> Response:
        threshold = low_threshold_get(account_id=request_account(request).pk)
        return Response(LowBalanceAlertOutput(threshold).data)

    @schema.alert_set_schema
    def put(self, request: Request) -> Response:
        serializer = LowBalanceAlertInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        threshold = low_threshold_set(account_id=request_account(request).pk, **serializer.validated_data)
        return Response(LowBalanceAlertOutput(threshold).data)


class LedgerView(APIView):
    """The account's ledger lines, newest first: ?limit= (1-200, default 50) &offset=."""

    @schema.ledger_schema
    def get(self, request: Request) -> Response:
        page = paginate(
            request,
            LedgerEntry.objects.filter(account=request_account(request))
            .select_related("action")
            .order_by("-created_at", "-id"),
        )
        return Response({"results": LedgerEntryOutput(page.pop("items"), many=True).data, **page})


urlpatterns = [
    path("account", AccountView.as_view(), name="account"),
    path("usage", UsageView.as_view(), name="usage"),
    path("ledger", LedgerView.as_view(), name="ledger"),
    path("account/low-balance-alert", LowBalanceAlertView.as_view(), name="low-balance-alert"),
]
