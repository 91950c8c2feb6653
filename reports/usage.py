"""Usage over time: the account's spending (billing's ledger) with its sessions and actions.

It reads both billing and sessions, so it sits above sessions (see .importlinter).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDay, TruncHour

from billing.models import LedgerEntry
from jobs.models import Job
from sessions.models import Action, BrowserSession


def usage_report(
    *, account_id: int, start: datetime, end: datetime, group_by: str, api_key_id: int | None = None
) -> dict[str, Any]:
    """Spending in [start, end): totals by charge kind, action type and API key, and per day or
    hour; with `api_key_id`, only what was charged to that key (and its sessions and actions)."""
    entries = LedgerEntry.objects.filter(account_id=account_id, created_at__gte=start, created_at__lt=end)
    sessions = BrowserSession.objects.filter(account_id=account_id, created_at__gte=start, created_at__lt=end)
    jobs = Job.objects.filter(account_id=account_id, created_at__gte=start, created_at__lt=end)
    actions = Action.objects.filter(account_id=account_id, created_at__gte=start, created_at__lt=end)
    if api_key_id is not None:
        entries = entries.filter(api_key_id=api_key_id)
        sessions = sessions.filter(api_key_id=api_key_id)
        jobs = jobs.filter(api_key_id=api_key_id)
        actions = actions.filter(api_key_id=api_key_id)

    def _by_kind(qs: Any) -> dict[str, int]:
        return {
            row["kind"]: -row["total"]
            for row in qs.values("kind").annotate(total=Sum("amount")).order_by("kind")
        }

    # Job holds and their releases move credits aside, they are not spending; job pages are.
    charges = entries.filter(
        kind__in=[
            LedgerEntry.Kind.ACTION,
            LedgerEntry.Kind.SESSION_TIME,
            LedgerEntry.Kind.REFUND,
            LedgerEntry.Kind.JOB_PAGE,
            LedgerEntry.Kind.PROXY,
        ]
    )
    by_action_type = {
        row["action__type"]: -row["total"]
        for row in charges.filter(action__isnull=False)
        .values("action__type")
        .annotate(total=Sum("amount"))
        .order_by("action__type")
    }
    by_key = [
        {
            "api_key_id": row["api_key_id"],
            "prefix": row["api_key__prefix"],
            "name": row["api_key__name"],
            "credits": -row["total"],
        }
        for row in charges.values("api_key_id", "api_key__prefix", "api_key__name")
        .annotate(total=Sum("amount"))
        .order_by("api_key_id")
    ]
    trunc = TruncHour if group_by == "hour" else TruncDay
    buckets = []
    for row in (
        charges.annotate(bucket=trunc("created_at"))
        .values("bucket")
        .annotate(
            credits=Sum("amount"),
            session_minutes=Count("id", filter=Q(kind=LedgerEntry.Kind.SESSION_TIME)),
        )
        .order_by("bucket")
    ):
        buckets.append(
            {"start": row["bucket"], "credits": -row["credits"], "session_minutes": row["session_minutes"]}
        )
    return {
        "from": start,
        "to": end,
        "group_by": group_by,
        "credits_spent": -(charges.aggregate(total=Sum("amount"))["total"] or 0),
        "credits_by_kind": _by_kind(charges),
        "credits_by_action_type": by_action_type,
        "credits_by_api_key": by_key,
        "api_key": api_key_id,
        "session_minutes": charges.filter(kind=LedgerEntry.Kind.SESSION_TIME).count(),
        "job_pages": charges.filter(kind=LedgerEntry.Kind.JOB_PAGE).count(),
        # Started MB through the operator's proxy pool, of the sessions and jobs created in the window.
        "proxy_mb": (sessions.aggregate(total=Sum("proxy_billed_mb"))["total"] or 0)
        + (jobs.aggregate(total=Sum("proxy_billed_mb"))["total"] or 0),
        "sessions": sessions.count(),
        "actions": actions.count(),
        "buckets": buckets,
    }
