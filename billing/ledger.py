"""The only code that moves credits.

Every movement is one ledger row and one balance update in the same transaction, under the
account's balance row lock, so concurrent charges serialize per account and the balance can be
checked against the ledger at any time.
"""

from __future__ import annotations

from django.db import transaction

from billing.models import Balance, LedgerEntry
from project.exceptions import InsufficientCredits


def ledger_post(
    *,
    account_id: int,
    amount: int,
    kind: str,
    idempotency_key: str,
    reason: str = "",
    session_id: str | None = None,
    action_id: int | None = None,
) -> tuple[LedgerEntry, bool]:
    """Post one movement; return (entry, created).

    A key that was already posted returns the existing entry and changes nothing. A charge the
    balance cannot cover raises InsufficientCredits and changes nothing.
    """
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError("ledger amounts are integers")
    with transaction.atomic():
        balance = Balance.objects.select_for_update().get(account_id=account_id)
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
        new_credits = balance.credits + amount
        if new_credits < 0:
            raise InsufficientCredits(
                f"This needs {-amount} credits and the balance is {balance.credits}.",
                extra={"balance": balance.credits, "required": -amount},
            )
        balance.credits = new_credits
        balance.save(update_fields=["credits", "updated_at"])
        entry = LedgerEntry.objects.create(
            account_id=account_id,
            kind=kind,
            amount=amount,
            balance_after=new_credits,
            reason=reason,
            session_id=session_id,
            action_id=action_id,
            idempotency_key=idempotency_key,
        )
    return entry, True


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
