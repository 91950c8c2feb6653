"""Reads of money: balances, and balances against the ledger (usage reports: reports/usage.py)."""

from __future__ import annotations

from typing import Any

from django.db.models import Sum

from billing.models import Balance, LedgerEntry


def balances_mismatched() -> list[dict[str, Any]]:
    """Accounts whose balance is not the sum of their ledger lines (should always be empty)."""
    rows = Balance.objects.annotate(ledger_sum=Sum("account__ledger__amount")).values(
        "account_id", "account__name", "credits", "ledger_sum"
    )
    return [
        {
            "account_id": r["account_id"],
            "name": r["account__name"],
            "balance": r["credits"],
            "ledger_sum": r["ledger_sum"] or 0,
        }
        for r in rows
        if r["credits"] != (r["ledger_sum"] or 0)
    ]


def session_cost(*, session_id: str) -> int:
    """Credits the session has cost so far: its time and actions, less refunds."""
    total = LedgerEntry.objects.filter(session_id=session_id).aggregate(total=Sum("amount"))["total"]
    return -(total or 0)


def balance_of(*, account_id: int) -> int:
    """The account's spendable credits (0 for an account without a balance row)."""
    credits = Balance.objects.filter(account_id=account_id).values_list("credits", flat=True).first()
    return int(credits or 0)
