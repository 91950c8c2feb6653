"""An action's life in the database: accept, claim, finish, refund; and the wait for its end.

An accepted action is a row in `queued` state plus a task on the actions queue
(sessions/dispatch.py). A worker drains a session's queue one action at a time in `id` order
(workers/action_runner.py): it claims the next action, runs it and finishes it here. The request
that submitted it waits for its completion signal (project/completion.py), or answers 202 when it
prefers not to wait.

Every writing statement of that life is in this file (the accept's debit is billing's SQL,
composed in); the statuses and ledger keys in the SQL are the models' enums and billing's key
function, formatted in (never user input).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.authentication import RequestKey
from accounts.models import Account
from billing.alerts import balance_crossings
from billing.ledger import accept_debit, spend_period
from billing.selectors import balance_of
from billing.services import action_charge_key, action_prices, action_refund_unrun
from billing.spend_caps import key_spend_cap_check
from project.completion import completion_publish
from project.db import retry_on_conflict
from project.exceptions import Busy, InsufficientCredits, ServiceUnavailable, is_outage
from project.rows import NO_FLUSH_WAIT, as_loaded, from_row, hot_cursor, json_value, select_list
from sessions import dispatch, selectors
from sessions.events import (
    Entry,
    action_finished_event,
    action_requested_event,
    session_events_publish,
    session_events_publish_with_completion,
    session_status_event,
)
from sessions.models import Action, ActionStatus, BrowserSession, SessionStatus, session_alive
from sessions.services import session_require_active

logger = logging.getLogger(__name__)

_QUEUED, _RUNNING = ActionStatus.QUEUED.value, ActionStatus.RUNNING.value
_ACCEPTING = (SessionStatus.READY.value, SessionStatus.RUNNING.value)

# How often a submit re-runs the accept when the rows changed between the statement and the look
# that explains its refusal (a race); then 409, which clients retry.
_ACCEPT_ATTEMPTS = 3


def action_event(action_public_id: str) -> str:
    return f"action:{action_public_id}"


def _alive_sql() -> str:
    """models.session_alive as SQL on the unaliased session table, its deadline `%(now)s`."""
    marker = datetime(2000, 1, 1, tzinfo=UTC)
    query = BrowserSession.objects.filter(session_alive(marker)).query
    sql, params = query.get_compiler(using="default").compile(query.where)
    pieces = sql.split("%s")
    rendered = [pieces[0]]
    for param, piece in zip(params, pieces[1:], strict=True):
        if param == marker:
            rendered.append("%(now)s")
        elif isinstance(param, str) and param.isidentifier():  # a status: an enum value
            rendered.append(f"'{param}'")
        else:
            raise TypeError(f"unexpected parameter in session_alive: {param!r}")
        rendered.append(piece)
    return "".join(rendered)


# Accepting an action is on every action's path, and it is one SQL statement, the only writer of
# an accept: billing prices the commands and debits (billing.ledger.accept_debit), this file locks
# the session row if it is alive and records the action. The session row is locked before the
# balance row (the lock order used everywhere: session, then balance), and only when both hold
# is the session touched (idle timer, ready -> running), the balance debited and the action and
# its ledger line recorded. The writes all depend on the locked rows (`covered`), so a refusal
# writes nothing; and the statement is its own transaction. When it returns no row,
# `_explain_refusal` finds out why (404, 410, 409, 402) without writing anything but the end of
# an expired session. (The f-string only inserts enum values and billing's SQL.)
def _accept_sql(*, capped: bool) -> str:
    debit = accept_debit(gate="live", record="recorded", capped=capped)
    return f"""
WITH {debit.prices},
live AS (
    SELECT id, status FROM browser_sessions_browsersession
    WHERE id = %(session_id)s AND account_id = %(account_id)s
      AND status IN ('{_ACCEPTING[0]}', '{_ACCEPTING[1]}')
      AND {_alive_sql()}
    FOR NO KEY UPDATE
),
{debit.covered},
touched AS (
    UPDATE browser_sessions_browsersession s
    SET last_activity_at = %(now)s,
        idle_expires_at = CASE WHEN s.idle_timeout_enabled
                          THEN %(now)s + make_interval(secs => s.inactivity_timeout_seconds) END,
        status = '{SessionStatus.RUNNING.value}'
    FROM covered
    WHERE s.id = %(session_id)s
),
{debit.debited},
recorded AS (
    INSERT INTO browser_sessions_action
        (public_id, session_id, account_id, api_key_id, type, params, status, result, error,
         executed_tab_id, page_context, request_id, price, step_prices, created_at)
    SELECT %(public_id)s, %(session_id)s, %(account_id)s, %(api_key_id)s, %(type)s, %(params)s::jsonb,
           '{_QUEUED}', NULL, '', '', NULL, %(request_id)s, d.total,
           CASE WHEN %(is_batch)s THEN to_jsonb(d.each) END, %(now)s
    FROM debited d
    RETURNING id, price, step_prices
),
{debit.charged}
SELECT r.id, r.price, r.step_prices, (SELECT unpriced FROM prices), (SELECT status FROM live),
       d.balance_after, d.low_threshold
FROM recorded r, debited d
"""  # noqa: S608


# A key with a monthly spend cap takes the second form (billing.ledger.accept_debit).
_ACCEPT = _accept_sql(capped=False)
_ACCEPT_CAPPED = _accept_sql(capped=True)


def _commands(action: dict[str, Any]) -> list[str]:
    if action["type"] == "batch":
        return [step["type"] for step in action["actions"]]
    return [action["type"]]


def action_submit(
    *, session_id: str, account: Account, action: dict[str, Any], api_key: RequestKey | None = None
) -> Action:
    """Accept a validated, canonical action on a live session of `account`, charge it, queue it.

    404 for a session the account does not have; 410 when it ended or expired (an expired one
    ends here); 409 while its browser starts; 402 (nothing recorded, nothing runs) when the
    balance cannot cover it, or `api_key`'s monthly spend cap (`key_spend_cap_reached`).
    """
    for _ in range(_ACCEPT_ATTEMPTS):
        accepted = _accept(session_id=session_id, account=account, action=action, api_key=api_key)
        if accepted is not None:
            row, events = accepted
            _deliver(row, events)
            return row
        _explain_refusal(session_id=session_id, account=account, action=action, api_key=api_key)
    raise Busy("The session or the balance kept changing while this action was accepted; try again.")


def _deliver(row: Action, events: list[Entry]) -> None:
    """Send the accepted action to the workers, after its watchers' `events` (in one round trip);
    if the broker is down, take it back (errored, refunded) and answer 503, so that the client's
    retry is the only copy that ever runs."""
    try:
        dispatch.actions_run_announced(row.session_id, events)
    except Exception as exc:
        if not is_outage(exc):
            raise
        logger.warning("action %s: not delivered (%r); refunded", row.public_id, exc)
        try:
            action_finish(row, ActionStatus.ERRORED, error="Not delivered to a worker; it was not charged.")
        except Exception as finish_exc:
            # Refunded or not, Beat delivers it later (sessions_with_undelivered_actions).
            if not is_outage(finish_exc):
                raise
        raise ServiceUnavailable(
            "The action could not be queued (a service is briefly unavailable); nothing was charged. "
            "Try again.",
            code="service_unavailable",
            retry_after=2,
        ) from exc


def _unsaved_row(action: dict[str, Any], **fields: Any) -> Action:
    params = {k: v for k, v in action.items() if k != "type"}
    request_id = str(params.get("request_id", ""))[:200]
    return Action(type=action["type"], params=params, request_id=request_id, **fields)


@retry_on_conflict
def _accept(
    *, session_id: str, account: Account, action: dict[str, Any], api_key: RequestKey | None
) -> tuple[Action, list[Entry]] | None:
    """The accept, in one statement, with the watchers' events it makes (sent with the action's
    task: `_deliver`); None when refused (see _ACCEPT)."""
    api_key_id = api_key.id if api_key is not None else None
    row = _unsaved_row(
        action, session_id=session_id, account_id=account.pk, api_key_id=api_key_id, created_at=timezone.now()
    )
    commands = _commands(action)
    capped = api_key is not None and api_key.spend_capped
    with hot_cursor() as cursor:
        cursor.execute(
            _ACCEPT_CAPPED if capped else _ACCEPT,
            {
                "items": commands,
                "now": row.created_at,
                "session_id": session_id,
                "account_id": account.pk,
                "public_id": row.public_id,
                "charge_key": action_charge_key(row.public_id),
                "type": row.type,
                "params": json.dumps(row.params),
                "request_id": row.request_id,
                "is_batch": row.type == "batch",
                "api_key_id": api_key_id,
                **({"period": spend_period(row.created_at)} if capped else {}),
            },
        )
        accepted = cursor.fetchone()
    if accepted is None:
        return None
    row.id, row.price, row.step_prices = accepted[0], accepted[1], json_value(accepted[2])
    if accepted[3]:
        logger.error("no price for some of %s; charged the highest action price", commands)
    after, low = accepted[5], accepted[6]
    if (low > 0 and after + row.price >= low > after) or after == 0:  # rare: one comparison
        balance_crossings(
            account_id=account.pk,
            event_key=action_charge_key(row.public_id),
            before=after + row.price,
            after=after,
            low=low,
        )
    # The accept is its own transaction, committed by now: the watchers' events (sessions/events.py).
    events = []
    if accepted[4] == SessionStatus.READY.value:
        events.append(
            session_status_event(session_id=session_id, status=SessionStatus.RUNNING, at=row.created_at)
        )
    events.append(
        action_requested_event(
            session_id=session_id,
            action_id=row.public_id,
            action_type=row.type,
            created_at=row.created_at,
            client_request_id=row.request_id,
        )
    )
    return as_loaded(row), events


def _explain_refusal(
    *, session_id: str, account: Account, action: dict[str, Any], api_key: RequestKey | None
) -> None:
    """Raise why the accept was refused; return when nothing explains it (the rows changed)."""
    session = selectors.session_get(account=account, session_id=session_id)  # 404
    session_require_active(session=session)  # 410 (an expired session ends here), 409
    price = sum(action_prices(action))
    if api_key is not None and api_key.spend_capped:
        key_spend_cap_check(api_key_id=api_key.id, required=price)  # 402 key_spend_cap_reached
    balance = balance_of(account_id=account.pk)
    if balance < price:
        raise InsufficientCredits(
            f"Not enough credits for this {action['type']} action: it costs {price} and the balance is "
            f"{balance}. Top up to continue; the session keeps running.",
            extra={"balance": balance, "required": price},
        )


# The session's oldest unfinished action with its session, claimed (queued -> running) in the
# same statement; one round trip per action. The outer SELECT sees the rows as they were before
# the UPDATE, so `claimed` tells whether this call took it.
# (The f-string only inserts enum values and column lists taken from the models.)
_CLAIM_NEXT = f"""
WITH next AS (
    SELECT id, status FROM browser_sessions_action
    WHERE session_id = %(session_id)s AND status IN ('{_QUEUED}', '{_RUNNING}')
    ORDER BY id LIMIT 1
),
claimed AS (
    UPDATE browser_sessions_action a
    SET status = '{_RUNNING}', started_at = %(now)s, lease_expires_at = %(lease_until)s
    FROM next WHERE a.id = next.id AND next.status = '{_QUEUED}' AND {NO_FLUSH_WAIT}
    RETURNING a.id
)
SELECT EXISTS (SELECT 1 FROM claimed), {select_list(Action, "a")}, {select_list(BrowserSession, "s")}
FROM next
JOIN browser_sessions_action a ON a.id = next.id
JOIN browser_sessions_browsersession s ON s.id = a.session_id
"""  # noqa: S608
_ACTION_COLUMNS = len(Action._meta.concrete_fields)


def action_claim_next(*, session_id: str) -> tuple[Action, bool] | None:
    """(the session's next action, whether this call claimed it), or None when none waits.

    Not claimed means it is still `running` from a worker that was lost.
    """
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.ACTION_LEASE_SECONDS)
    with hot_cursor() as cursor:
        cursor.execute(_CLAIM_NEXT, {"session_id": session_id, "now": now, "lease_until": lease_until})
        row = cursor.fetchone()
    if row is None:
        return None
    claimed, values = bool(row[0]), row[1:]
    action = from_row(Action, values[:_ACTION_COLUMNS])
    action.session = from_row(BrowserSession, values[_ACTION_COLUMNS:])
    if claimed:
        action.status, action.started_at, action.lease_expires_at = ActionStatus.RUNNING, now, lease_until
    return action, claimed


def action_lease_renew(*, action_id: int) -> bool:
    """The running worker's heartbeat: extend the lease; False if the action is no longer running
    (Beat settled it after a missed heartbeat)."""
    return action_id in action_leases_renew(action_ids=[action_id])


_RENEW_MANY = f"""
    UPDATE browser_sessions_action SET lease_expires_at = %s
    WHERE id = ANY(%s) AND status = '{_RUNNING}' AND {NO_FLUSH_WAIT} RETURNING id
"""  # noqa: S608


def action_leases_renew(*, action_ids: list[int]) -> set[int]:
    """Extend the leases of the actions a worker process runs, in one statement; returns the ids
    still running (the others were settled by Beat after a missed heartbeat)."""
    if not action_ids:
        return set()
    until = timezone.now() + timedelta(seconds=settings.ACTION_LEASE_SECONDS)
    with hot_cursor() as cursor:
        cursor.execute(_RENEW_MANY, [until, list(action_ids)])
        return {row[0] for row in cursor.fetchall()}


_LEASE_LOST_ERROR = "The worker running this action was lost; what did not run was not charged. Try again."

_PROGRESS = f"""
    UPDATE browser_sessions_action SET result = %s::jsonb
    WHERE id = %s AND status = '{_RUNNING}' AND {NO_FLUSH_WAIT}
"""  # noqa: S608


def action_progress_record(*, action_id: int, result: dict[str, Any]) -> None:
    """Store a running batch's steps so far, as each finishes: if its worker is lost, the settle
    (action_finish without an outcome) charges the steps that ran and refunds only the rest."""
    with hot_cursor() as cursor:
        cursor.execute(_PROGRESS, [json.dumps(result), action_id])


def action_leases_expire(*, now: datetime | None = None, limit: int = 500) -> list[str]:
    """Settle every running action whose worker stopped renewing its lease: errored, refunded
    once, its waiter woken. Returns the ids of their sessions (the caller frees each session's
    action lock and checks its browser)."""
    now = now or timezone.now()
    expired = list(
        Action.objects.filter(status=ActionStatus.RUNNING, lease_expires_at__lt=now).order_by("id")[:limit]
    )
    sessions = []
    for action in expired:
        if action_finish(action, ActionStatus.ERRORED, error=_LEASE_LOST_ERROR, lease_expired_before=now):
            logger.warning("action %s: lease expired, its worker was lost; settled", action.public_id)
            sessions.append(action.session_id)
    return sorted(set(sessions))


def sessions_with_undelivered_actions(*, now: datetime | None = None) -> list[str]:
    """Sessions with an action queued for longer than ACTION_REDELIVER_AFTER_SECONDS and none
    running: its task never reached a worker (the broker was down), or was lost with one."""
    now = now or timezone.now()
    before = now - timedelta(seconds=settings.ACTION_REDELIVER_AFTER_SECONDS)
    stale = Action.objects.filter(status=ActionStatus.QUEUED, created_at__lt=before)
    running = Action.objects.filter(status=ActionStatus.RUNNING).values("session_id")
    return sorted(set(stale.exclude(session_id__in=running).values_list("session_id", flat=True)[:500]))


_HAS_QUEUED = f"""
SELECT EXISTS (SELECT 1 FROM browser_sessions_action WHERE session_id = %s AND status = '{_QUEUED}')
"""  # noqa: S608


def action_has_queued(*, session_id: str) -> bool:
    with hot_cursor() as cursor:
        cursor.execute(_HAS_QUEUED, [session_id])
        return bool(cursor.fetchone()[0])


_RAN = (ActionStatus.SUCCEEDED, ActionStatus.FAILED)  # ran on the page: charged either way

_FINISH = f"""
    UPDATE browser_sessions_action
    SET status = %(status)s, error = %(error)s, result = %(result)s::jsonb,
        executed_tab_id = %(executed_tab_id)s, page_context = %(page_context)s::jsonb,
        finished_at = %(finished_at)s, lease_expires_at = NULL
    WHERE id = %(id)s AND status IN ('{_QUEUED}', '{_RUNNING}')
      AND (%(lease_expired_before)s::timestamptz IS NULL OR lease_expires_at < %(lease_expired_before)s)
"""  # noqa: S608
# Outside a transaction (the worker's finish; refunds that follow commit synchronously). Inside
# one, the whole transaction would commit without the flush: the plain statement there.
_FINISH_ALONE = _FINISH.rstrip() + f"\n      AND {NO_FLUSH_WAIT}\n"


def _json_or_null(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def action_finish(
    action: Action,
    status: str,
    *,
    error: str = "",
    outcome: dict[str, Any] | None = None,
    lease_expired_before: datetime | None = None,
) -> bool:
    """Record the end of an action once, refund what did not run because of us, wake the waiter.

    With `lease_expired_before`, only if its lease ran out before then (a heartbeat that came in
    meanwhile keeps it running). False when someone else ended it first.
    """
    if outcome is None and action.type == "batch" and isinstance(action.result, dict):
        # Settled by someone other than its worker: what the worker recorded as steps finished.
        outcome = {"result": action.result}
    outcome = outcome or {}
    fields = {
        "status": status,
        "error": error[:4000],
        "result": outcome.get("result"),
        "executed_tab_id": outcome.get("executed_tab_id", ""),
        "page_context": outcome.get("page_context"),
        "finished_at": timezone.now(),
    }
    with hot_cursor() as cursor:
        cursor.execute(
            _FINISH if connection.in_atomic_block else _FINISH_ALONE,
            {
                **fields,
                "id": action.pk,
                "result": _json_or_null(fields["result"]),
                "page_context": _json_or_null(fields["page_context"]),
                "lease_expired_before": lease_expired_before,
            },
        )
        finished: bool = cursor.rowcount == 1
    if finished:
        if action.type == "batch":
            steps = (outcome.get("result") or {}).get("steps", [])
            ran = [step["status"] in _RAN for step in steps]
        else:
            ran = [status in _RAN]
        prices = action.step_prices or [action.price]
        if len(ran) < len(prices) or not all(ran):  # the common case, all ran, needs no lookup
            action_refund_unrun(
                action_id=action.pk,
                action_public_id=action.public_id,
                action_type=action.type,
                prices=prices,
                ran=ran,
            )
    # Before the waiter is woken, so that a client's next action's events come after this one's.
    entries = []
    if finished:
        entries.append(
            action_finished_event(
                session_id=action.session_id,
                action_id=action.public_id,
                action_type=action.type,
                action_status=status,
                error=fields["error"],
                code=(fields["result"] or {}).get("error_code")
                if isinstance(fields["result"], dict)
                else None,
                created_at=action.created_at,
                started_at=action.started_at,
                finished_at=fields["finished_at"],
            )
        )
    # The waiting request answers from this payload, without reading the row back.
    payload = {**fields, "finished_at": fields["finished_at"].isoformat()} if finished else None
    if connection.in_atomic_block:
        session_events_publish(entries)  # once committed
        completion_publish(action_event(action.public_id), payload)
    else:
        session_events_publish_with_completion(entries, action_event(action.public_id), payload)
    return finished


def action_completed(*, action: Action, done: dict[str, Any] | None) -> Action:
    """The action after waiting for its completion signal (`done`: its payload, None if it did
    not come in time): the payload is what the worker wrote to the row, no need to read it back;
    without one, the row as it stands (still queued or running)."""
    if done and "status" in done:
        for field, value in done.items():
            setattr(action, field, datetime.fromisoformat(value) if field == "finished_at" else value)
    else:
        action.refresh_from_db()
    return action
