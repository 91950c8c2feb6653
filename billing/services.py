"""Charges: what things cost and when credits move.

- An action is charged when it is accepted, in the statement that records it
  (sessions/action_queue.py), keyed by `action_charge_key`: an account can never start work it
  cannot pay for, and nothing a worker does (a retry, a redelivery, a crash) can charge it again.
  What did not run because of us is refunded, once. The prices here explain a refusal (402).
- Session time is charged per started minute, keyed by session and minute; which minutes a
  session owes is the session's business (sessions/time_billing.py).

Billing answers and moves credits (ids in, a result out): it never reads or writes a session.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection, transaction

from billing.ledger import ledger_post
from billing.models import LedgerEntry, Price
from project.exceptions import InsufficientCredits

logger = logging.getLogger(__name__)


def _prices(items: list[str]) -> dict[str, int]:
    # On every action's path: one plain query, no ORM round.
    with connection.cursor() as cursor:
        cursor.execute("SELECT item, credits FROM billing_price WHERE item = ANY(%s)", [list(set(items))])
        return dict(cursor.fetchall())


def _highest_action_price() -> int:
    highest = (
        Price.objects.exclude(item__in=[Price.SESSION_MINUTE, Price.PROXY_MB])
        .order_by("-credits")
        .values_list("credits", flat=True)
    )
    return int(highest.first() or 1)


def price_of(item: str) -> int:
    return prices_of([item])[0]


def prices_of(items: list[str]) -> list[int]:
    found = _prices(items)
    missing = [item for item in items if item not in found]
    if missing:
        # A type without a row must not be free by accident: price it like the dearest action.
        logger.error("no price for %s; charging the highest action price", missing)
        fallback = _highest_action_price()
        found.update(dict.fromkeys(missing, fallback))
    return [int(found[item]) for item in items]


def action_prices(action: dict[str, Any]) -> list[int]:
    """The price of each command an action runs (one for an action, one per step of a batch)."""
    if action["type"] == "batch":
        return prices_of([step["type"] for step in action["actions"]])
    return prices_of([action["type"]])


def action_charge_key(action_public_id: str) -> str:
    """The idempotency key of an action's charge (also written by sessions.action_queue's SQL)."""
    return f"action:{action_public_id}"


def action_refund_unrun(
    *, action_id: int, action_public_id: str, action_type: str, prices: list[int], ran: list[bool]
) -> None:
    """Give back the price of every command of the action that did not run because of us.

    `prices[i]` is what command i was charged; `ran[i]` says whether it ran (succeeded, or failed
    on the page: both are charged). Keyed by the action, so a second call refunds nothing.
    """
    charge = LedgerEntry.objects.filter(idempotency_key=action_charge_key(action_public_id)).first()
    if charge is None:
        return
    consumed = sum(price for price, done in zip(prices, ran, strict=False) if done)
    refund = -charge.amount - consumed
    if refund <= 0:
        return
    ledger_post(
        account_id=charge.account_id,
        amount=refund,
        kind=LedgerEntry.Kind.REFUND,
        idempotency_key=f"refund:{action_charge_key(action_public_id)}",
        reason=f"{action_type} did not run to the end because of the service",
        session_id=charge.session_id,
        action_id=action_id,
        api_key_id=charge.api_key_id,
    )


def session_minute_charge(
    *,
    account_id: int,
    session_id: str,
    minute: int,
    api_key_id: int | None = None,
    enforce_key_cap: bool = False,
) -> None:
    """Charge a started minute of a session, to the key that created it. With `enforce_key_cap`
    (the create's first minute) the key's monthly cap refuses it; later minutes only count."""
    ledger_post(
        account_id=account_id,
        amount=-price_of(Price.SESSION_MINUTE),
        kind=LedgerEntry.Kind.SESSION_TIME,
        idempotency_key=f"session:{session_id}:minute:{minute}",
        reason=f"session minute {minute + 1}",
        session_id=session_id,
        api_key_id=api_key_id,
        enforce_key_cap=enforce_key_cap,
    )


def session_proxy_charge(*, account_id: int, session_id: str, upto_mb: int, new_mb: int) -> None:
    """Charge `new_mb` started MB through the operator's proxy pool, bringing the session's
    charged MB to `upto_mb`: keyed by that total, so a retried charge moves nothing."""
    _proxy_charge(
        account_id=account_id,
        owner=f"session:{session_id}",
        upto_mb=upto_mb,
        new_mb=new_mb,
        reason=f"{new_mb} MB through the advanced proxy (total {upto_mb} MB)",
        session_id=session_id,
    )


def job_proxy_charge(
    *, account_id: int, job_id: str, upto_mb: int, new_mb: int, api_key_id: int | None = None
) -> None:
    """A job's `session_proxy_charge`: `new_mb` started MB through the pool, bringing the job's
    charged MB to `upto_mb`; keyed by that total, so a retried charge moves nothing. Taken from
    the balance (the job's hold covers its pages only); InsufficientCredits when it cannot."""
    _proxy_charge(
        account_id=account_id,
        owner=f"job:{job_id}",
        upto_mb=upto_mb,
        new_mb=new_mb,
        reason=f"job {job_id}: {new_mb} MB through the advanced proxy (total {upto_mb} MB)",
        api_key_id=api_key_id,
    )


def _proxy_charge(
    *,
    account_id: int,
    owner: str,
    upto_mb: int,
    new_mb: int,
    reason: str,
    session_id: str | None = None,
    api_key_id: int | None = None,
) -> None:
    if new_mb <= 0:
        return
    ledger_post(
        account_id=account_id,
        amount=-price_of(Price.PROXY_MB) * new_mb,
        kind=LedgerEntry.Kind.PROXY,
        idempotency_key=f"{owner}:proxy_mb:{upto_mb}",
        reason=reason,
        session_id=session_id,
        api_key_id=api_key_id,
    )


def session_time_refund(*, session_id: str, account_id: int) -> None:
    """A session whose browser never started is not billed: refund its time charges, once."""
    lines = list(
        LedgerEntry.objects.filter(session_id=session_id, kind=LedgerEntry.Kind.SESSION_TIME).values_list(
            "amount", "api_key_id"
        )
    )
    charged = -sum(amount for amount, _ in lines)
    if charged > 0:
        ledger_post(
            account_id=account_id,
            amount=charged,
            kind=LedgerEntry.Kind.REFUND,
            idempotency_key=f"refund:session:{session_id}",
            reason="the browser did not start",
            session_id=session_id,
            api_key_id=lines[0][1],
        )


# Batch jobs ----------------------------------------------------------------------------------
# A job holds its maximum cost at submit (one job_hold line), so that no other spending can make
# it fail mid-way. Each charged page moves its price out of the hold and into a job_page charge
# (two lines in one transaction: the balance does not move), and the end releases the rest.
# The job row (jobs app) tracks how much of the hold is left; billing only moves credits.


def job_hold_place(*, account_id: int, job_id: str, amount: int, api_key_id: int | None = None) -> None:
    """Take the job's maximum cost out of the balance; InsufficientCredits (402) if it is short,
    KeySpendCapReached (402) if it would take the submitting key past its monthly cap."""
    if amount <= 0:
        return
    try:
        ledger_post(
            account_id=account_id,
            amount=-amount,
            kind=LedgerEntry.Kind.JOB_HOLD,
            idempotency_key=f"job_hold:{job_id}",
            reason=f"held for job {job_id}",
            api_key_id=api_key_id,
            enforce_key_cap=True,
        )
    except InsufficientCredits as exc:
        raise InsufficientCredits(
            f"This job can cost up to {amount} credits and the balance is {exc.extra['balance']}. "
            "Top up, submit fewer pages, or set max_credits.",
            extra=exc.extra,
        ) from None


def job_page_charge(
    *,
    account_id: int,
    job_id: str,
    item_id: int,
    amount: int,
    reason: str,
    attempt: int = 1,
    api_key_id: int | None = None,
) -> bool:
    """Charge one try of a page from the job's hold, once per item and try number.

    False when that try was charged before (nothing moved).
    """
    if amount <= 0:
        return False
    # The first try keeps the key it always had; later tries get their own.
    key = f"job_item:{item_id}" if attempt <= 1 else f"job_item:{item_id}:try:{attempt}"
    with transaction.atomic():
        released = ledger_post(
            account_id=account_id,
            amount=amount,
            kind=LedgerEntry.Kind.JOB_RELEASE,
            idempotency_key=f"{key}:hold",
            reason=f"job {job_id}: page taken from the hold",
            api_key_id=api_key_id,
        )
        charged = ledger_post(
            account_id=account_id,
            amount=-amount,
            kind=LedgerEntry.Kind.JOB_PAGE,
            idempotency_key=key,
            reason=reason[:255],
            api_key_id=api_key_id,
        )
    return released.created and charged.created


def job_hold_release(*, account_id: int, job_id: str, amount: int, api_key_id: int | None = None) -> None:
    """Give back what the finished job did not use; once per job."""
    if amount <= 0:
        return
    ledger_post(
        account_id=account_id,
        amount=amount,
        kind=LedgerEntry.Kind.JOB_RELEASE,
        idempotency_key=f"job_release:{job_id}",
        reason=f"job {job_id} ended: unused hold released",
        api_key_id=api_key_id,
    )
