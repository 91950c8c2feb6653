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
from billing.models import LedgerEntry
from billing.selectors import balance_of
from project.exceptions import InvalidInput
from project.pagination import paginate
from reports import schema
from reports.serializers import AccountOutput, LedgerEntryOutput, UsageOutput
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
        report = usage_report(account_id=request_account(request).pk, start=start, end=end, group_by=group_by)
        return Response(UsageOutput(report).data)


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
]
