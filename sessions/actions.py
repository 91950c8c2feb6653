"""Accepting browser actions (web side) and reading them back.

An accepted action is a row in `queued` state plus a task on the actions queue. Workers run a
session's queued actions one at a time in `id` order (workers/actions.py); the request that
submitted one waits for its completion signal, or answers 202 when it prefers not to wait.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Account
from billing.services import action_charge, action_prices
from project.exceptions import NotFound
from project.rows import as_loaded, hot_cursor, json_value
from sessions import selectors
from sessions.models import Action, BrowserSession
from sessions.services import session_enforce_expiry, session_touch
from workers.completion import completion_wait


def action_event(action_public_id: str) -> str:
    return f"action:{action_public_id}"


# Accepting an action is on every action's path, so its common case is one SQL statement: price
# the commands, lock the session row if it is live and then the balance row if it covers the
# price (the lock order used everywhere: session, then balance), and only when both hold, touch
# the session (idle timer, ready -> running), debit the balance, and record the action and its
# ledger line. The writes all depend on the locked rows (`covered`), so a refusal writes nothing;
# and the statement is its own transaction. When it returns no row (session unknown, ended,
# expired or starting; balance short; a command without a price), `action_submit` takes the
# general path below, which finds out why and answers accordingly (404, 410, 409, 402), or
# charges a command without a price like the dearest action.
_ACCEPT = """
WITH prices AS (
    SELECT array_agg(p.credits ORDER BY t.ord) AS each,
           coalesce(sum(p.credits), 0)::integer AS total,
           count(p.credits) AS found
    FROM unnest(%(items)s::text[]) WITH ORDINALITY AS t(item, ord)
    LEFT JOIN billing_price p ON p.item = t.item
),
live AS (
    SELECT s.id FROM browser_sessions_browsersession s, prices
    WHERE s.id = %(session_id)s AND s.account_id = %(account_id)s
      AND s.status IN ('ready', 'running')
      AND s.expires_at > %(now)s
      AND NOT (s.idle_timeout_enabled AND s.idle_expires_at IS NOT NULL AND s.idle_expires_at <= %(now)s)
      AND prices.found = cardinality(%(items)s::text[])
    FOR NO KEY UPDATE OF s
),
covered AS (
    SELECT b.account_id, prices.total, prices.each
    FROM billing_balance b, prices
    WHERE b.account_id = %(account_id)s AND b.credits >= prices.total AND EXISTS (SELECT 1 FROM live)
    FOR NO KEY UPDATE OF b
),
touched AS (
    UPDATE browser_sessions_browsersession s
    SET last_activity_at = %(now)s,
        idle_expires_at = CASE WHEN s.idle_timeout_enabled
                          THEN %(now)s + make_interval(secs => s.inactivity_timeout_seconds) END,
        status = 'running'
    FROM covered
    WHERE s.id = %(session_id)s
),
debited AS (
    UPDATE billing_balance b
    SET credits = b.credits - c.total, updated_at = now()
    FROM covered c
    WHERE b.account_id = c.account_id
    RETURNING b.credits AS balance_after, c.total, c.each
),
recorded AS (
    INSERT INTO browser_sessions_action
        (public_id, session_id, account_id, type, params, status, result, error, executed_tab_id,
         page_context, request_id, price, step_prices, created_at)
    SELECT %(public_id)s, %(session_id)s, %(account_id)s, %(type)s, %(params)s::jsonb, 'queued', NULL,
           '', '', NULL, %(request_id)s, d.total,
           CASE WHEN %(is_batch)s THEN to_jsonb(d.each) END, %(now)s
    FROM debited d
    RETURNING id, price, step_prices
),
charged AS (
    INSERT INTO billing_ledgerentry
        (account_id, kind, amount, balance_after, reason, session_id, action_id, idempotency_key, created_at)
    SELECT %(account_id)s, 'action', -r.price, d.balance_after, %(type)s, %(session_id)s, r.id,
           'action:' || %(public_id)s, now()
    FROM recorded r, debited d
)
SELECT id, price, step_prices FROM recorded
"""


def _commands(action: dict[str, Any]) -> list[str]:
    if action["type"] == "batch":
        return [step["type"] for step in action["actions"]]
    return [action["type"]]


def action_submit(*, session_id: str, account: Account, action: dict[str, Any]) -> Action:
    """Accept a validated, canonical action on a live session of `account`, charge it, queue it.

    404 for a session the account does not have; 410 when it ended or expired (an expired one
    ends here); 409 while its browser starts; 402 (nothing recorded, nothing runs) when the
    balance cannot cover it.
    """
    row = _accept(session_id=session_id, account=account, action=action)
    if row is None:
        session = selectors.session_get(account=account, session_id=session_id)
        row = _accept_general(session=session, action=action)
    transaction.on_commit(lambda: _enqueue(session_id))
    return row


def _enqueue(session_id: str) -> None:
    from workers.tasks import actions_run

    actions_run.delay(session_id)


def _unsaved_row(action: dict[str, Any], **fields: Any) -> Action:
    params = {k: v for k, v in action.items() if k != "type"}
    request_id = str(params.get("request_id", ""))[:200]
    return Action(type=action["type"], params=params, request_id=request_id, **fields)


def _accept(*, session_id: str, account: Account, action: dict[str, Any]) -> Action | None:
    """The common case in one statement; None when it does not apply (see _ACCEPT)."""
    row = _unsaved_row(action, session_id=session_id, account_id=account.pk, created_at=timezone.now())
    with hot_cursor() as cursor:
        cursor.execute(
            _ACCEPT,
            {
                "items": _commands(action),
                "now": row.created_at,
                "session_id": session_id,
                "account_id": account.pk,
                "public_id": row.public_id,
                "type": row.type,
                "params": json.dumps(row.params),
                "request_id": row.request_id,
                "is_batch": row.type == "batch",
            },
        )
        accepted = cursor.fetchone()
    if accepted is None:
        return None
    row.id, row.price, row.step_prices = accepted[0], accepted[1], json_value(accepted[2])
    return as_loaded(row)


def _accept_general(*, session: BrowserSession, action: dict[str, Any]) -> Action:
    """Every case, through the ORM: raises what the fast path could not explain."""
    session = session_enforce_expiry(session=session)  # an expiry is final, whatever follows
    prices = action_prices(action)
    row = _unsaved_row(
        action,
        session=session,
        account_id=session.account_id,
        price=sum(prices),
        step_prices=prices if action["type"] == "batch" else None,
    )
    with transaction.atomic():
        # A refused action (402) changes nothing, the idle timer included: all in one transaction,
        # session row before balance row, the lock order used everywhere.
        session_touch(session=session)
        row.save(force_insert=True)
        action_charge(account_id=session.account_id, session_id=session.pk, action_row=row, amount=row.price)
    return row


def action_wait(*, action: Action, timeout: float) -> Action:
    """Wait (bounded) for the action to finish; return it as it stands."""
    done = completion_wait(action_event(action.public_id), timeout=timeout)
    if done and "status" in done:
        # The worker sent what it wrote to the row; no need to read it back.
        for field, value in done.items():
            setattr(action, field, datetime.fromisoformat(value) if field == "finished_at" else value)
    else:
        action.refresh_from_db()
    return action


def action_get(*, account: Account, action_id: str) -> Action:
    action = Action.objects.filter(public_id=action_id, account=account).select_related("session").first()
    if action is None:
        raise NotFound(f"Action {action_id!r} not found.", code="action_not_found")
    return action


def action_list(*, session: BrowserSession) -> QuerySet[Action]:
    return Action.objects.filter(session=session).order_by("-id")
