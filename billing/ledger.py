"""The only code that moves credits.

Every movement is one ledger row and one balance update in the same transaction. The balance
UPDATE takes the account's balance row lock and refuses to go below zero in the same statement,
so concurrent charges serialize per account, and the balance can be checked against the ledger
at any time. This is on every action's path, so it is two SQL statements, not an ORM round of
read-lock-check-write.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction

from billing.models import Balance, LedgerEntry
from project.exceptions import InsufficientCredits
from webhooks import events as webhook_events
from webhooks.services import event_emit

_DEBIT = """
    UPDATE billing_balance SET credits = credits + %s, updated_at = now()
    WHERE account_id = %s AND credits + %s >= 0
    RETURNING credits, low_threshold
"""
_APPEND = """
    INSERT INTO billing_ledgerentry
        (account_id, kind, amount, balance_after, reason, session_id, action_id, idempotency_key, created_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
"""


@dataclass(frozen=True)
class Posted:
    entry_id: int | None
    created: bool  # False: the key was posted before, nothing changed


class _AlreadyPosted(Exception):
    pass


def ledger_post(
    *,
    account_id: int,
    amount: int,
    kind: str,
    idempotency_key: str,
    reason: str = "",
    session_id: str | None = None,
    action_id: int | None = None,
) -> Posted:
    """Post one movement, once per `idempotency_key`.

    A key that was already posted changes nothing. A charge the balance cannot cover raises
    InsufficientCredits and changes nothing.
    """
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError("ledger amounts are integers")
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_DEBIT, [amount, account_id, amount])
            row = cursor.fetchone()
            if row is None:
                balance = (
                    Balance.objects.filter(account_id=account_id).values_list("credits", flat=True).first()
                )
                raise InsufficientCredits(
                    f"This needs {-amount} credits and the balance is {balance}.",
                    extra={"balance": balance, "required": -amount},
                )
            cursor.execute(
                _APPEND,
                [account_id, kind, amount, row[0], reason[:255], session_id, action_id, idempotency_key],
            )
            inserted = cursor.fetchone()
            if inserted is None:
                raise _AlreadyPosted  # undoes the balance update above
            if amount < 0:
                _balance_events(
                    account_id, int(inserted[0]), before=row[0] - amount, after=row[0], low=row[1]
                )
    except _AlreadyPosted:
        return Posted(entry_id=None, created=False)
    return Posted(entry_id=int(inserted[0]), created=True)


def _balance_events(account_id: int, entry_id: int, *, before: int, after: int, low: int) -> None:
    """credits.low when a charge crosses the account's threshold, credits.exhausted when it
    empties the balance: in the charge's transaction (the webhook outbox), rare by nature."""
    data = {"account_id": account_id, "balance": after, "threshold": low}
    if low > 0 and before >= low > after:
        event_emit(
            account_id=account_id,
            type=webhook_events.CREDITS_LOW,
            data=data,
            idempotency_key=f"credits.low:{entry_id}",
        )
    if after == 0:
        event_emit(
            account_id=account_id,
            type=webhook_events.CREDITS_EXHAUSTED,
            data=data,
            idempotency_key=f"credits.exhausted:{entry_id}",
        )


def balance_open(*, account_id: int, grant: int = 0, reason: str = "initial grant") -> None:
    """Create the account's balance row, with its opening grant as the first ledger line."""
    Balance.objects.get_or_create(account_id=account_id)
    if grant:
        ledger_post(
            account_id=account_id,
            amount=grant,
            kind=LedgerEntry.Kind.GRANT,
            idempotency_key=f"grant:opening:{account_id}",
            reason=reason,
        )
