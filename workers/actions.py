"""Running browser actions on workers: one at a time per session, in the order accepted.

Every accepted action has its own task, but whichever task holds the session's Redis lock runs
*all* queued actions of that session in `id` order; the others find theirs done and return.
So order holds whichever worker takes which task, and sessions run in parallel. A task that
finds the lock taken returns at once (it does not block a worker slot); the holder re-checks
the queue after releasing, so no action is stranded between the two.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone
from redis.exceptions import LockError

from billing.services import action_refund_unrun
from project.redis import get_redis
from sessions.actions import action_event
from sessions.models import Action, ActionStatus, BrowserSession, EndedReason, SessionStatus
from sessions.screenshots import screenshot_save
from sessions.services import session_terminate
from workers.browser import BrowserError, BrowserGone, Display
from workers.browser.actions import ActionFailed, ActionOutcome, run_action
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
            while (action := _next_to_run(session_id)) is not None:
                if action.status == ActionStatus.RUNNING:
                    # Nobody else holds the lock: a worker was lost while it ran this one.
                    _finish(action, ActionStatus.ERRORED, error="The worker running this action was lost.")
                    continue
                _run_one(action, rearm=lock.reacquire)
        finally:
            try:
                lock.release()
            except LockError:
                logger.warning("session %s: action lock expired while held", session_id)
        if not Action.objects.filter(session_id=session_id, status=ActionStatus.QUEUED).exists():
            return


def _next_to_run(session_id: str) -> Action | None:
    """The session's oldest unfinished action, with its session (one query)."""
    return (
        Action.objects.filter(session_id=session_id, status__in=[ActionStatus.QUEUED, ActionStatus.RUNNING])
        .select_related("session")
        .order_by("id")
        .first()
    )


_RAN = (ActionStatus.SUCCEEDED, ActionStatus.FAILED)  # ran on the page: charged either way


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
    pending = [ActionStatus.QUEUED, ActionStatus.RUNNING]
    finished = Action.objects.filter(pk=action.pk, status__in=pending).update(**fields)
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
    now = timezone.now()
    claimed = Action.objects.filter(pk=action.pk, status=ActionStatus.QUEUED).update(
        status=ActionStatus.RUNNING, started_at=now
    )
    if not claimed:
        return
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


def _run_step(session: BrowserSession, action: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Run one canonical action; return (status, error, outcome for the row)."""
    display = Display(session.display_width, session.display_height, session.display_scale)
    try:
        outcome = run_action(handle=handle_of(session), display=display, action=action)
    except ActionFailed as exc:
        return ActionStatus.FAILED, str(exc), {}
    except BrowserGone as exc:
        logger.warning("session %s: browser gone during %s: %s", session.pk, action["type"], exc)
        session_terminate(session_id=session.pk, reason=EndedReason.CRASHED, error=str(exc))
        return ActionStatus.ERRORED, "The browser is gone; the session has ended (crashed).", {}
    except BrowserError as exc:
        logger.warning("session %s: browser error during %s: %s", session.pk, action["type"], exc)
        return ActionStatus.ERRORED, f"The browser failed: {exc}", {}
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
