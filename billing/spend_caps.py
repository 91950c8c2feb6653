"""Monthly spend caps per API key (set in the console): reads and the one write.

What a key spent this month is kept in its KeySpend row, moved by every charge made with it in
the charge's own transaction (billing.ledger); the accept of an action refuses in its statement
a charge that would pass the cap. Sessions' later minutes are counted but never refused (a
running session is not cut by its key's cap: the cap refuses new work: actions, session
creates, job submits).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from django.db import transaction
from django.db.models import Sum

from billing.ledger import cap_reached, spend_period
from billing.models import Balance, KeySpend, LedgerEntry
from project.exceptions import InvalidInput

MAX_CAP = 10**12


@dataclass(frozen=True)
class KeySpendNow:
    cap: int | None
    spent: int  # this month (UTC)


def key_spend_get(*, api_key_id: int, now: datetime | None = None) -> KeySpendNow:
    row = (
        KeySpend.objects.filter(api_key_id=api_key_id)
        .values_list("monthly_cap", "period_start", "spent")
        .first()
    )
    if row is None:
        return KeySpendNow(cap=None, spent=_spent_in_ledger(api_key_id, spend_period(now)))
    cap, period, spent = row
    return KeySpendNow(cap=cap, spent=spent if period == spend_period(now) else 0)


def key_spend_cap_check(*, api_key_id: int, required: int) -> None:
    """KeySpendCapReached when `required` more credits would take the key past its cap."""
    spend = key_spend_get(api_key_id=api_key_id)
    if spend.cap is not None and spend.spent + required > spend.cap:
        raise cap_reached(cap=spend.cap, spent=spend.spent, required=required)


def _spent_in_ledger(api_key_id: int, period: date) -> int:
    since = datetime.combine(period, time.min, tzinfo=UTC)
    total = LedgerEntry.objects.filter(api_key_id=api_key_id, created_at__gte=since).aggregate(
        total=Sum("amount")
    )["total"]
    return max(0, -(total or 0))


def key_spend_cap_set(*, account_id: int, api_key_id: int, cap: int | None) -> KeySpendNow:
    """Set (or with None remove) the key's monthly cap. The month's spending so far is counted
    from the ledger under the account's balance lock, which every charge takes first, so no
    charge slips between the count and the row."""
    if cap is not None and not 0 <= cap <= MAX_CAP:
        raise InvalidInput(f"The cap must be between 0 and {MAX_CAP} credits.", code="cap_invalid")
    period = spend_period()
    with transaction.atomic():
        Balance.objects.select_for_update(no_key=True).filter(account_id=account_id).first()
        spent = _spent_in_ledger(api_key_id, period)
        KeySpend.objects.update_or_create(
            api_key_id=api_key_id, defaults={"monthly_cap": cap, "period_start": period, "spent": spent}
        )
    return KeySpendNow(cap=cap, spent=spent)
