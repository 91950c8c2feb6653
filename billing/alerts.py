"""Low-balance alerts: the account's threshold, and what happens when a charge crosses it.

One setting serves every alert: `Balance.low_threshold` is the threshold in force, in credits.
An account sets it directly (absolute credits), or as a percent of its last top-up
(`low_threshold_percent`), in which case every top-up recomputes it. A charge that takes the
balance from at or above it to below it sends `credits.low` to the account's webhooks and an
email to the account's owners, once per crossing; a charge that empties the balance sends
`credits.exhausted` and a second email. Both in the charge's transaction (the webhook outbox;
the email is queued after commit), so a charge that rolls back alerts nobody.

Owners are people of the console (accounts); billing sits below accounts, so the email is a task
sent by name (webhooks/dispatch.py) that the webhooks worker runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction

from billing.models import Balance
from project.exceptions import InvalidInput
from webhooks import dispatch
from webhooks import events as webhook_events
from webhooks.services import event_emit

DEFAULT_LOW_THRESHOLD = 1000
MAX_THRESHOLD = 10**12


@dataclass(frozen=True)
class LowBalanceThreshold:
    credits: int  # the threshold in force (0: alerts off)
    percent: int | None  # set: `credits` is this percent of the last top-up
    last_topup: int


def low_threshold_get(*, account_id: int) -> LowBalanceThreshold:
    row = (
        Balance.objects.filter(account_id=account_id)
        .values_list("low_threshold", "low_threshold_percent", "last_topup")
        .first()
    )
    if row is None:
        return LowBalanceThreshold(credits=DEFAULT_LOW_THRESHOLD, percent=None, last_topup=0)
    return LowBalanceThreshold(credits=int(row[0]), percent=row[1], last_topup=int(row[2]))


def low_threshold_set(
    *, account_id: int, credits: int | None = None, percent: int | None = None
) -> LowBalanceThreshold:
    """Set the threshold: either `credits` (absolute; 0 turns alerts off) or `percent` (1-100)
    of the last top-up. 400 for both, neither or out of range; nothing changes then."""
    if (credits is None) == (percent is None):
        raise InvalidInput("Give either credits or percent.", code="threshold_invalid")
    if credits is not None and not 0 <= credits <= MAX_THRESHOLD:
        raise InvalidInput(f"credits must be between 0 and {MAX_THRESHOLD}.", code="threshold_invalid")
    if percent is not None and not 1 <= percent <= 100:
        raise InvalidInput("percent must be between 1 and 100.", code="threshold_invalid")
    with transaction.atomic():
        balance = Balance.objects.select_for_update(no_key=True).get(account_id=account_id)
        if percent is not None:
            balance.low_threshold_percent = percent
            balance.low_threshold = balance.last_topup * percent // 100
        else:
            balance.low_threshold_percent = None
            balance.low_threshold = int(credits or 0)
        balance.save(update_fields=["low_threshold", "low_threshold_percent", "updated_at"])
    return low_threshold_get(account_id=account_id)


_TOPUP = """
    UPDATE billing_balance
    SET last_topup = %(amount)s,
        low_threshold = CASE WHEN low_threshold_percent IS NULL THEN low_threshold
                             ELSE %(amount)s * low_threshold_percent / 100 END
    WHERE account_id = %(account_id)s
"""


def topup_recorded(*, account_id: int, amount: int) -> None:
    """In the top-up's transaction (billing.ledger): remember it, and move a percent threshold."""
    with connection.cursor() as cursor:
        cursor.execute(_TOPUP, {"amount": amount, "account_id": account_id})


def balance_crossings(*, account_id: int, event_key: str, before: int, after: int, low: int) -> None:
    """What a charge that took the balance from `before` to `after` must tell (threshold `low`).

    In the charge's transaction when there is one; rare by nature, so the hot path pays one
    comparison. `event_key` names the charge: the events are emitted once per charge.
    """
    data = {"account_id": account_id, "balance": after, "threshold": low}
    crossed = low > 0 and before >= low > after
    if crossed:
        event_emit(
            account_id=account_id,
            type=webhook_events.CREDITS_LOW,
            data=data,
            idempotency_key=f"credits.low:{event_key}",
        )
        dispatch.owners_notify(
            account_id,
            subject=f"Browserfleet: your balance is low ({after} credits)",
            body=(
                f"Your account's credit balance fell to {after} credits, below your alert threshold of "
                f"{low} credits.\n\nAdd credits in the console (Billing) to keep your sessions running."
            ),
        )
    if after == 0 and before > 0:
        event_emit(
            account_id=account_id,
            type=webhook_events.CREDITS_EXHAUSTED,
            data=data,
            idempotency_key=f"credits.exhausted:{event_key}",
        )
        dispatch.owners_notify(
            account_id,
            subject="Browserfleet: your balance is empty",
            body=(
                "Your account's credit balance is 0. New sessions and actions are refused with 402, "
                "and running sessions end when their next minute cannot be paid.\n\n"
                "Add credits in the console (Billing)."
            ),
        )
