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

A charge made with an API key names it (`api_key_id`); a key with a monthly spend cap
(billing.models.KeySpend) has its month's spending moved in the same transaction, after the
balance (lock order: balance, then the key's spend row), and a charge that would pass the cap is
refused with KeySpendCapReached (402 `key_spend_cap_reached`) when the caller asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db import connection, transaction
from django.utils import timezone

from billing.alerts import balance_crossings, topup_recorded
from billing.models import Balance, LedgerEntry, Price
from project.exceptions import InsufficientCredits, KeySpendCapReached

_DEBIT = """
    UPDATE billing_balance SET credits = credits + %s, updated_at = now()
    WHERE account_id = %s AND credits + %s >= 0
    RETURNING credits, low_threshold
"""
_APPEND = """
    INSERT INTO billing_ledgerentry
        (account_id, kind, amount, balance_after, reason, session_id, action_id, api_key_id,
         idempotency_key, created_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
"""


# The key's month's spending moves by the charge (a refund gives back); a new month starts it from
# zero. RETURNING the cap and the new figure: the caller refuses when asked to.
_KEY_SPEND = """
    UPDATE billing_keyspend
    SET spent = GREATEST(0, CASE WHEN period_start = %(period)s THEN spent ELSE 0 END - %(amount)s),
        period_start = %(period)s, updated_at = now()
    WHERE api_key_id = %(api_key_id)s
    RETURNING monthly_cap, spent
"""


def spend_period(now: datetime | None = None) -> date:
    """The first day of the current month (UTC): what a key's spend cap counts."""
    return (now or timezone.now()).astimezone(UTC).date().replace(day=1)


def cap_reached(*, cap: int, spent: int, required: int) -> KeySpendCapReached:
    return KeySpendCapReached(
        f"This API key's monthly spend cap is {cap} credits and it has spent {spent} this month; "
        f"this needs {required} more. Raise the cap in the console, or use another key.",
        extra={"cap": cap, "spent": spent, "required": required},
    )


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
    api_key_id: int | None = None,
    enforce_key_cap: bool = False,
) -> Posted:
    """Post one movement, once per `idempotency_key`.

    A key that was already posted changes nothing. A charge the balance cannot cover raises
    InsufficientCredits and changes nothing; with `enforce_key_cap`, so does a charge that would
    take `api_key_id` past its monthly spend cap (KeySpendCapReached).
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
                [
                    account_id,
                    kind,
                    amount,
                    row[0],
                    reason[:255],
                    session_id,
                    action_id,
                    api_key_id,
                    idempotency_key,
                ],
            )
            inserted = cursor.fetchone()
            if inserted is None:
                raise _AlreadyPosted  # undoes the balance update above
            if api_key_id is not None:
                cursor.execute(
                    _KEY_SPEND, {"period": spend_period(), "amount": amount, "api_key_id": api_key_id}
                )
                spend = cursor.fetchone()
                capped = enforce_key_cap and amount < 0 and spend is not None and spend[0] is not None
                if capped and spend[1] > spend[0]:  # undoes the charge above
                    raise cap_reached(cap=spend[0], spent=spend[1] + amount, required=-amount)
            if amount < 0:
                balance_crossings(
                    account_id=account_id,
                    event_key=f"ledger:{int(inserted[0])}",
                    before=row[0] - amount,
                    after=row[0],
                    low=row[1],
                )
            elif kind == LedgerEntry.Kind.TOPUP:
                topup_recorded(account_id=account_id, amount=amount)
    except _AlreadyPosted:
        return Posted(entry_id=None, created=False)
    return Posted(entry_id=int(inserted[0]), created=True)


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
    `account_id`, `session_id`, `type`, `charge_key` and `api_key_id` (the request's key, or
    None); with `capped`, also `period` (spend_period()). Its gate CTE (named at construction)
    returns a row only when the work may go ahead (and locks what it must first: the lock order
    is the gate's rows, then the balance, then the key's spend row); its record CTE returns the new
    action's `id` and `price` (from `debited.total`). Outputs: `prices(each, total, unpriced)`,
    `covered(account_id, total, each)` (one row when the gate passed, the balance covers the
    total and, when capped, the key's monthly cap does too; the caller's other writes join it so
    that a refusal writes nothing), `debited(balance_after, total, each, low_threshold)`.

    `capped` is for a key with a spend cap (authentication tells, with the key): its statement
    also locks the key's spend row and moves it. A key without one pays nothing for the feature.
    """

    prices: str
    covered: str
    debited: str
    charged: str


def accept_debit(*, gate: str, record: str, capped: bool = False) -> AcceptDebit:
    # A command without a price costs like the dearest action, so an operator's mistake never
    # makes one free. (The f-strings only insert enum values and the caller's CTE names.)
    if capped:
        # The spend row is locked with the balance row, after it; in READ COMMITTED a statement
        # that waited for these locks re-checks this WHERE against the rows as the other accept
        # left them, so two accepts can never both pass the cap (tests/billing/test_spend_caps.py).
        covered = f"""
covered AS (
    SELECT b.account_id, prices.total, prices.each
    FROM billing_balance b, billing_keyspend ks, prices
    WHERE b.account_id = %(account_id)s AND b.credits >= prices.total
      AND ks.api_key_id = %(api_key_id)s
      AND (ks.monthly_cap IS NULL
           OR (CASE WHEN ks.period_start = %(period)s THEN ks.spent ELSE 0 END) + prices.total
              <= ks.monthly_cap)
      AND EXISTS (SELECT 1 FROM {gate})
    FOR NO KEY UPDATE OF b, ks
),
key_spent AS (
    UPDATE billing_keyspend ks
    SET spent = (CASE WHEN ks.period_start = %(period)s THEN ks.spent ELSE 0 END) + c.total,
        period_start = %(period)s, updated_at = now()
    FROM covered c
    WHERE ks.api_key_id = %(api_key_id)s
)"""  # noqa: S608
    else:
        covered = f"""
covered AS (
    SELECT b.account_id, prices.total, prices.each
    FROM billing_balance b, prices
    WHERE b.account_id = %(account_id)s AND b.credits >= prices.total AND EXISTS (SELECT 1 FROM {gate})
    FOR NO KEY UPDATE OF b
)"""  # noqa: S608
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
        covered=covered,
        debited="""
debited AS (
    UPDATE billing_balance b
    SET credits = b.credits - c.total, updated_at = now()
    FROM covered c
    WHERE b.account_id = c.account_id
    RETURNING b.credits AS balance_after, c.total, c.each, b.low_threshold
)""",
        charged=f"""
charged AS (
    INSERT INTO billing_ledgerentry
        (account_id, kind, amount, balance_after, reason, session_id, action_id, api_key_id,
         idempotency_key, created_at)
    SELECT %(account_id)s, '{LedgerEntry.Kind.ACTION.value}', -r.price, d.balance_after, %(type)s,
           %(session_id)s, r.id, %(api_key_id)s, %(charge_key)s, now()
    FROM {record} r, debited d
)""",  # noqa: S608
    )
