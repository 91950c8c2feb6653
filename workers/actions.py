"""Running browser actions on workers: one at a time per session, in the order accepted.

Every accepted action has its own task, but whichever task holds the session's Redis lock runs
*all* queued actions of that session in `id` order; the others find theirs done and return.
So order holds whichever worker takes which task, and sessions run in parallel. A task that
finds the lock taken returns at once (it does not block a worker slot); the holder re-checks
the queue after releasing, so no action is stranded between the two.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone
from redis.exceptions import LockError

from billing.services import action_refund_unrun
from project.redis import get_redis
from project.rows import from_row, hot_cursor, select_list
from sessions.actions import action_event
from sessions.models import Action, ActionStatus, BrowserSession, EndedReason, SessionStatus
from sessions.screenshots import screenshot_save
from sessions.services import session_terminate
from workers.browser import BrowserError, BrowserGone, Display
from workers.browser.actions import ActionFailed, ActionOutcome, run_action
from workers.browser.egress import error_code as egress_error_code
from workers.completion import completion_publish
from workers.services import handle_of

logger = logging.getLogger(__name__)

# Above the longest single action (a batch re-arms the lock after each step).
LOCK_TTL_SECONDS = 120


def _lock_key(session_id: str) -> str:
    return f"bf:session-actions:{session_id}"


def actions_drain(*, session_id: str) -> None:
    lock = get_redis().lock(_lock_key(session_id), timeout=LOCK_TTL_SECONDS, blocking=False)
    while True:
        if not lock.acquire(blocking=False):
            return  # the holder runs our action, and re-checks the queue when it is done
        try:
            while (taken := _take_next(session_id)) is not None:
                action, claimed = taken
                if not claimed:
                    # Still `running` while nobody else holds the lock: its worker was lost, maybe
                    # in the middle of a tab operation.
                    _finish(action, ActionStatus.ERRORED, error="The worker running this action was lost.")
                    _record_main_tab(action.session, "")
                    continue
                _run_one(action, rearm=lock.reacquire)
        finally:
            try:
                lock.release()
            except LockError:
                logger.warning("session %s: action lock expired while held", session_id)
        if not _has_queued(session_id):
            return


# The session's oldest unfinished action with its session, claimed (queued -> running) in the
# same statement; one round trip per action. The outer SELECT sees the rows as they were before
# the UPDATE, so `claimed` tells whether this call took it.
# (The f-string only inserts column lists taken from the models.)
_TAKE_NEXT = f"""
WITH next AS (
    SELECT id, status FROM browser_sessions_action
    WHERE session_id = %(session_id)s AND status IN ('queued', 'running')
    ORDER BY id LIMIT 1
),
claimed AS (
    UPDATE browser_sessions_action a SET status = 'running', started_at = %(now)s
    FROM next WHERE a.id = next.id AND next.status = 'queued'
    RETURNING a.id
)
SELECT EXISTS (SELECT 1 FROM claimed), {select_list(Action, "a")}, {select_list(BrowserSession, "s")}
FROM next
JOIN browser_sessions_action a ON a.id = next.id
JOIN browser_sessions_browsersession s ON s.id = a.session_id
"""  # noqa: S608
_ACTION_COLUMNS = len(Action._meta.concrete_fields)


def _take_next(session_id: str) -> tuple[Action, bool] | None:
    """(the session's next action, whether this call claimed it), or None when none waits."""
    now = timezone.now()
    with hot_cursor() as cursor:
        cursor.execute(_TAKE_NEXT, {"session_id": session_id, "now": now})
        row = cursor.fetchone()
    if row is None:
        return None
    claimed, values = bool(row[0]), row[1:]
    action = from_row(Action, values[:_ACTION_COLUMNS])
    action.session = from_row(BrowserSession, values[_ACTION_COLUMNS:])
    if claimed:
        action.status, action.started_at = ActionStatus.RUNNING, now
    return action, claimed


def _has_queued(session_id: str) -> bool:
    with hot_cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM browser_sessions_action"
            " WHERE session_id = %s AND status = 'queued')",
            [session_id],
        )
        return bool(cursor.fetchone()[0])


_RAN = (ActionStatus.SUCCEEDED, ActionStatus.FAILED)  # ran on the page: charged either way

_FINISH = """
    UPDATE browser_sessions_action
    SET status = %(status)s, error = %(error)s, result = %(result)s::jsonb,
        executed_tab_id = %(executed_tab_id)s, page_context = %(page_context)s::jsonb,
        finished_at = %(finished_at)s
    WHERE id = %(id)s AND status IN ('queued', 'running')
"""


def _json_or_null(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _finish(action: Action, status: str, *, error: str = "", outcome: dict[str, Any] | None = None) -> None:
    """Record the end of an action once, refund what did not run because of us, wake the waiter."""
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
            _FINISH,
            {
                **fields,
                "id": action.pk,
                "result": _json_or_null(fields["result"]),
                "page_context": _json_or_null(fields["page_context"]),
            },
        )
        finished = cursor.rowcount == 1
    if finished:
        if action.type == "batch":
            steps = (outcome.get("result") or {}).get("steps", [])
            ran = [step["status"] in _RAN for step in steps]
        else:
            ran = [status in _RAN]
        commands = len(action.step_prices or [action.price])
        if len(ran) < commands or not all(ran):  # the common case, all ran, needs no lookup
            action_refund_unrun(action_row=action, ran=ran)
    # The waiting request answers from this payload, without reading the row back.
    payload = {**fields, "finished_at": fields["finished_at"].isoformat()} if finished else None
    completion_publish(action_event(action.public_id), payload)


def _run_one(action: Action, *, rearm: Any) -> None:
    """Run an action this worker has claimed."""
    now = action.started_at
    session = action.session
    reason = session.expiry_reason(now)
    if reason is not None:
        session_terminate(session_id=session.pk, reason=reason)
    if reason is not None or session.status not in (SessionStatus.READY, SessionStatus.RUNNING):
        _finish(action, ActionStatus.CANCELLED, error="The session ended before this action ran.")
        return
    try:
        if action.type == "batch":
            status, error, outcome = _run_batch(session, action.params["actions"], rearm=rearm)
        else:
            status, error, outcome = _run_step(session, {"type": action.type, **action.params})
    except SoftTimeLimitExceeded:
        status, error, outcome = ActionStatus.ERRORED, "The action took too long and was stopped.", {}
    _finish(action, status, error=error, outcome=outcome)
    finished = timezone.now()
    if (finished - now).total_seconds() > 1:
        # A long action is activity until it ends: it must not leave the session idle-expired.
        # (Accepting it moved the timer already; short ones need no second write.)
        BrowserSession.objects.filter(pk=session.pk, status=SessionStatus.RUNNING).update(
            last_activity_at=finished, idle_expires_at=session.idle_deadline(finished)
        )


def _record_main_tab(session: BrowserSession, tab_id: str) -> None:
    """Remember the main tab for the session's next action (blank: ask the browser then)."""
    if tab_id != session.main_tab_id:
        BrowserSession.objects.filter(pk=session.pk).update(main_tab_id=tab_id)
        session.main_tab_id = tab_id


def _run_step(session: BrowserSession, action: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Run one canonical action; return (status, error, outcome for the row)."""
    display = Display(session.display_width, session.display_height, session.display_scale)
    try:
        outcome = run_action(
            handle=handle_of(session), display=display, action=action, main_tab=session.main_tab_id
        )
    except BrowserError as exc:
        # A failed action may have left another tab current (a tab operation half done): the
        # next action asks the browser which tab is the main one.
        _record_main_tab(session, "")
        if isinstance(exc, ActionFailed):
            # A code (e.g. blocked_address from the egress filter) is shown as the action's `code`.
            code = egress_error_code(exc)
            return ActionStatus.FAILED, str(exc), {"result": {"error_code": code}} if code else {}
        if isinstance(exc, BrowserGone):
            logger.warning("session %s: browser gone during %s: %s", session.pk, action["type"], exc)
            session_terminate(session_id=session.pk, reason=EndedReason.CRASHED, error=str(exc))
            return ActionStatus.ERRORED, "The browser is gone; the session has ended (crashed).", {}
        logger.warning("session %s: browser error during %s: %s", session.pk, action["type"], exc)
        return ActionStatus.ERRORED, f"The browser failed: {exc}", {}
    _record_main_tab(session, outcome.main_tab)
    return ActionStatus.SUCCEEDED, "", _stored_outcome(session, action, outcome)


def _stored_outcome(
    session: BrowserSession, action: dict[str, Any], outcome: ActionOutcome
) -> dict[str, Any]:
    result = dict(outcome.result)
    if outcome.screenshot_png is not None:
        result["screenshot_token"] = screenshot_save(outcome.screenshot_png)
        if action["type"] == "screenshot" and action.get("base64"):
            result["base64"] = True
    if outcome.display is not None:
        BrowserSession.objects.filter(pk=session.pk).update(
            display_width=outcome.display.width,
            display_height=outcome.display.height,
            display_scale=outcome.display.scale,
        )
        session.display_width = outcome.display.width
        session.display_height = outcome.display.height
        session.display_scale = outcome.display.scale
    return {
        "result": result,
        "executed_tab_id": outcome.executed_tab_id,
        "page_context": outcome.page_context,
    }


def _run_batch(
    session: BrowserSession, steps: list[dict[str, Any]], *, rearm: Any
) -> tuple[str, str, dict[str, Any]]:
    """Run steps in order and stop at the first that does not succeed; report each step."""
    results: list[dict[str, Any]] = []
    status, error = ActionStatus.SUCCEEDED, ""
    for index, step in enumerate(steps):
        rearm()
        step_status, step_error, outcome = _run_step(session, step)
        results.append({"type": step["type"], "status": step_status, "error": step_error, **outcome})
        if step_status != ActionStatus.SUCCEEDED:
            status, error = step_status, f"Step {index} ({step['type']}) failed: {step_error}"
            break
    completed = sum(1 for r in results if r["status"] == ActionStatus.SUCCEEDED)
    return status, error, {"result": {"steps": results, "completed": completed}}
