"""What the Billing and API keys pages show (every query starts from the account)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from django.conf import settings
from django.db.models import QuerySet, Sum

from accounts.models import Account, ApiKey
from billing.ledger import spend_period
from billing.models import KeySpend, LedgerEntry, Price


@dataclass(frozen=True)
class KeyRow:
    key: ApiKey
    cap: int | None
    spent_this_month: int


def api_keys_of(*, account: Account) -> list[KeyRow]:
    """The account's keys, live ones first, each with its cap and this month's spending (from
    the ledger: the same lines /v1/usage?api_key= sums)."""
    keys = list(ApiKey.objects.filter(account=account).order_by("revoked_at", "-created_at", "-pk"))
    since = datetime.combine(spend_period(), time.min, tzinfo=UTC)
    spent = {
        row["api_key_id"]: -(row["total"] or 0)
        for row in LedgerEntry.objects.filter(account=account, api_key__in=keys, created_at__gte=since)
        .values("api_key_id")
        .annotate(total=Sum("amount"))
        .order_by()
    }
    caps = dict(KeySpend.objects.filter(api_key__in=keys).values_list("api_key_id", "monthly_cap"))
    return [KeyRow(key=k, cap=caps.get(k.pk), spent_this_month=max(0, spent.get(k.pk, 0))) for k in keys]


def prices() -> list[Price]:
    """Every price, as the accept reads it (billing_price): actions and the session minute."""
    return list(Price.objects.order_by("credits", "item"))


def ledger_of(*, account: Account) -> QuerySet[LedgerEntry]:
    return (
        LedgerEntry.objects.filter(account=account)
        .select_related("action", "api_key")
        .order_by("-created_at", "-id")
    )


def plan_limits(*, account: Account) -> list[tuple[str, Any]]:
    """The plan's limits as (label, value) rows; None is unlimited."""
    plan = account.plan
    return [
        ("Concurrent sessions (job browsers included)", plan.max_concurrent_sessions),
        ("Maximum session lifetime", f"{plan.max_lifetime_seconds // 60} minutes"),
        ("API requests per minute", plan.requests_per_minute),
        (
            "Requests waiting for a result at once",
            plan.max_waiting_requests or settings.ACCOUNT_MAX_INFLIGHT_REQUESTS,
        ),
        ("URLs per batch job", plan.max_job_urls),
        ("Batch jobs running at once", plan.max_running_jobs),
        ("Batch jobs waiting to start", plan.max_queued_jobs),
        ("Webhook endpoints", plan.max_webhook_endpoints),
        ("Saved browser states", plan.max_saved_states),
    ]
