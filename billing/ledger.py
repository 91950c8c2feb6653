"""The only code that moves credits.

Every movement is one ledger row and one balance update in the same transaction. The balance
UPDATE takes the account's balance row lock and refuses to go below zero in the same statement,
so concurrent charges serialize per account, and the balance can be checked against the ledger
at any time. Two forms, both written here:

- `ledger_post`: two SQL statements in a transaction (grants, refunds, session minutes).
- `accept_debit`: the SQL pieces of the debit inside an action's accept, which sessions composes
  with its own (lock the session, record the action) into ONE statement, its own transaction:
  the accept is on every action's path, and one round trip there is worth a composed statement.
  sessions writes no balance or ledger SQL of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction

from billing.models import Balance, LedgerEntry, Price
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


@dataclass(frozen=True)
class AcceptDebit:
    """An action's charge as common table expressions, for one statement of the caller's.

    The caller's statement starts `WITH {prices}, <gate>, {covered}, ... {debited}, <record>,
    {charged}` and passes the parameters `items` (the commands' price items, in order),
    `account_id`, `session_id`, `type` and `charge_key`. Its gate CTE (named at construction)
    returns a row only when the work may go ahead (and locks what it must first: the lock order
    is the gate's rows, then the balance); its record CTE returns the new action's `id` and
    `price` (from `debited.total`). Outputs: `prices(each, total, unpriced)`,
    `covered(account_id, total, each)` (one row when the gate passed and the balance covers the
    total; the caller's other writes join it so that a refusal writes nothing), `debited
    (balance_after, total, each)`.
    """

    prices: str
    covered: str
    debited: str
    charged: str


def accept_debit(*, gate: str, record: str) -> AcceptDebit:
    # A command without a price costs like the dearest action, so an operator's mistake never
    # makes one free. (The f-strings only insert enum values and the caller's CTE names.)
    return AcceptDebit(
        prices=f"""
priced AS (
    SELECT t.ord, p.credits AS listed,
           coalesce(p.credits,
                    (SELECT max(credits) FROM billing_price WHERE item <> '{Price.SESSION_MINUTE}'),
                    1) AS credits
    FROM unnest(%(items)s::text[]) WITH ORDINALITY AS t(item, ord)
    LEFT JOIN billing_price p ON p.item = t.item
),
prices AS (
    SELECT array_agg(credits ORDER BY ord) AS each,
           sum(credits)::integer AS total,
           count(*) FILTER (WHERE listed IS NULL) AS unpriced
    FROM priced
)""",  # noqa: S608
        covered=f"""
covered AS (
    SELECT b.account_id, prices.total, prices.each
    FROM billing_balance b, prices
    WHERE b.account_id = %(account_id)s AND b.credits >= prices.total AND EXISTS (SELECT 1 FROM {gate})
    FOR NO KEY UPDATE OF b
)""",  # noqa: S608
        debited="""
debited AS (
    UPDATE billing_balance b
    SET credits = b.credits - c.total, updated_at = now()
    FROM covered c
    WHERE b.account_id = c.account_id
    RETURNING b.credits AS balance_after, c.total, c.each
)""",
        charged=f"""
charged AS (
    INSERT INTO billing_ledgerentry
        (account_id, kind, amount, balance_after, reason, session_id, action_id, idempotency_key, created_at)
    SELECT %(account_id)s, '{LedgerEntry.Kind.ACTION.value}', -r.price, d.balance_after, %(type)s,
           %(session_id)s, r.id, %(charge_key)s, now()
    FROM {record} r, debited d
)""",  # noqa: S608
    )
