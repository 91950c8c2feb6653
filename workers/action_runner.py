"""Running browser actions on workers: one at a time per session, in the order accepted.

Every accepted action sends its own drain request (workers/drains.py), but whichever drain holds
the session's Redis lock runs *all* queued actions of that session in `id` order; the others find
theirs done and return. So order holds whichever worker takes which request, and sessions run in
parallel. A drain that finds the lock taken returns at once (it does not block a thread); the
holder re-checks the queue after releasing, so no action is stranded between the two. The rows
are claimed and finished through sessions/action_queue.py; the session's own columns change
through sessions/browser_state.py.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from project.db import connection_release
from project.memo import BoundedMemo
from project.redis import get_redis
from sessions import dispatch
from sessions.action_queue import (
    action_claim_next,
    action_finish,
    action_has_queued,
    action_leases_expire,
    action_leases_renew,
    action_progress_record,
    sessions_with_undelivered_actions,
)
from sessions.browser_state import session_activity_record, session_display_record, session_main_tab_record
from sessions.models import LIVE_STATUSES, Action, ActionStatus, BrowserSession, EndedReason, SessionStatus
from sessions.proxies import CHANGE_PROXY_SEAL_ID
from sessions.screenshots import screenshot_save
from sessions.services import session_proxy_change, session_terminate
from sessions.state_crypto import StateSealError, state_open
from workers.browser import BrowserError, BrowserGone, Display, get_backend, proxy_routes
from workers.browser.egress import error_code as egress_error_code
from workers.browser.executor import ActionFailed, ActionOutcome, run_action
from workers.error_text import tenant_error_text

logger = logging.getLogger(__name__)


# The drain's lock lives as long as the running action's lease: the heartbeat re-arms both, and
# both run out together when the worker is lost (Beat then frees the lock at once).
def lock_ttl_seconds() -> int:
    return int(settings.ACTION_LEASE_SECONDS)


def lock_key(session_id: str) -> str:
    return f"bf:session-actions:{session_id}"


def restoring_key(session_id: str) -> str:
    """Set while a session's storage is being restored after ready (workers/services.py
    `_storage_lock`), under the session's action lock; it outlives that lock, so that an action
    that finds it after taking the lock knows the restore was never finished."""
    return f"bf:session-restoring:{session_id}"


# How long the restoring mark outlives a lost restorer's lock: past it, nothing tells that the
# session's storage is missing. A session that waited that long for its first action is rare.
RESTORING_MARK_SECONDS = 24 * 3600


# Sessions whose drain, holding their lock, found no restoring mark. The mark is set only before
# a session is ready, by the restorer holding the same lock (workers/services.py `_storage_lock`),
# and actions are accepted only once it is ready: once a drain under the lock has seen no mark,
# none can appear for that session again, and its later drains skip the look (a Redis round trip
# on every action's path).
_restore_checked: BoundedMemo[str, bool] = BoundedMemo(10_000)


def _restore_interrupted(session_id: str) -> bool:
    """The restore that held this session's lock was lost (its worker died) before the storage
    was in: the session ends crashed (its queued actions cancelled) rather than act without the
    state it was created with; a crashed session's end saves nothing, so no save replaces a
    state with a half-restored one. Called under the session's action lock."""
    if session_id in _restore_checked:
        return False
    try:
        if not get_redis().exists(restoring_key(session_id)):
            _restore_checked.put(session_id, True)
            return False
    except RedisError:
        return False  # as a drain without Redis: the restore went in before ready (services.py)
    logger.warning("session %s: its saved state's restore was interrupted; ending it", session_id)
    session_terminate(
        session_id=session_id,
        reason=EndedReason.CRASHED,
        error="The saved state's restore was interrupted (its worker was lost); the session was ended "
        "before any action ran without it.",
    )
    with contextlib.suppress(RedisError):
        get_redis().delete(restoring_key(session_id))
    return True


def actions_drain(*, session_id: str, stopping: threading.Event | None = None) -> None:
    """Run the session's queued actions, in order, if no other drain does (see above). When
    `stopping` is set (the worker shuts down), the drain ends after its current action and hands
    the rest of the queue on in a new drain request."""
    # Not thread-local: the heartbeat thread re-arms it.
    lock = get_redis().lock(
        lock_key(session_id), timeout=lock_ttl_seconds(), blocking=False, thread_local=False
    )
    # The actions worker runs a threads pool, where Celery's time limits do not apply: the drain
    # checks its own limit between actions (an action itself is bounded by the batch budget, the
    # wait caps and the WebDriver timeouts). Under prefork the soft limit below also fires.
    deadline = time.monotonic() + settings.ACTION_DRAIN_TIME_LIMIT_SECONDS
    while True:
        if not lock.acquire(blocking=False):
            return  # the holder runs our action, and re-checks the queue when it is done
        try:
            # A lost restore ends the session: the claims below then find only cancelled actions.
            _restore_interrupted(session_id)
            while (taken := action_claim_next(session_id=session_id)) is not None:
                action, claimed = taken
                if not claimed:
                    # Still `running` while nobody else holds the lock: its worker was lost, maybe
                    # in the middle of a tab operation.
                    action_finish(
                        action, ActionStatus.ERRORED, error="The worker running this action was lost."
                    )
                    session_main_tab_record(session=action.session, tab_id="")
                    continue
                with _leases.hold(action, lock):
                    _run_one(action, rearm=lock.reacquire)
                out_of_time = time.monotonic() > deadline or (stopping is not None and stopping.is_set())
                if out_of_time and action_has_queued(session_id=session_id):
                    raise SoftTimeLimitExceeded()  # hand the rest of the queue on, as below
        except SoftTimeLimitExceeded:
            # The drain ran ACTION_DRAIN_TIME_LIMIT_SECONDS, or its worker stops; the action it
            # was in has ended. A new drain request takes the rest of the queue (after the lock
            # is released below).
            shutdown = stopping is not None and stopping.is_set()
            why = "the worker stops" if shutdown else "drain time limit reached"
            logger.warning("session %s: %s; handing the queue on", session_id, why)
            stopped = True
        else:
            stopped = False
        finally:
            try:
                lock.release()
            except LockError:
                logger.warning("session %s: action lock expired while held", session_id)
        if stopped:
            dispatch.actions_run(session_id)
            return
        if not action_has_queued(session_id=session_id):
            return


class _LeaseKeeper:
    """One thread per worker process renews the leases of every action the process is running,
    and re-arms their sessions' locks, every third of the lease: a lost worker is noticed within
    one lease (Beat's actions_reconcile) and a live one never is.

    One UPDATE for all of them per period, on one pooled connection between beats; before, each
    action started a thread of its own, whose connection was opened and closed with it.
    """

    def __init__(self) -> None:
        self._held: dict[int, tuple[str, Lock]] = {}
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def hold(self, action: Action, lock: Lock) -> Iterator[None]:
        with self._mutex:
            self._held[action.pk] = (action.public_id, lock)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="action-leases", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._mutex:
                self._held.pop(action.pk, None)

    def held(self) -> list[int]:
        with self._mutex:
            return list(self._held)

    def _run(self) -> None:
        while True:
            time.sleep(settings.ACTION_LEASE_SECONDS / 3)
            try:
                self.beat()
            finally:
                connection.close()  # back to the pool between beats

    def beat(self) -> None:
        with self._mutex:
            held = dict(self._held)
        if not held:
            return
        try:
            action_leases_renew(action_ids=list(held))
        except DatabaseError as exc:
            # Keep beating: a brief outage must not end a healthy action.
            logger.warning("action leases: renewal failed: %r", exc)
        for public_id, lock in held.values():
            try:
                lock.reacquire()
            except (LockError, RedisError) as exc:
                logger.warning("action %s: lock not re-armed: %r", public_id, exc)


_leases = _LeaseKeeper()


def _run_one(action: Action, *, rearm: Callable[[], Any]) -> None:
    """Run an action this worker has claimed."""
    now = action.started_at or timezone.now()  # set by the claim
    session = action.session
    reason = session.expiry_reason(now)
    if reason is not None:
        session_terminate(session_id=session.pk, reason=reason)
    if reason is not None or session.status not in (SessionStatus.READY, SessionStatus.RUNNING):
        action_finish(action, ActionStatus.CANCELLED, error="The session ended before this action ran.")
        return
    stopped = False
    try:
        if action.type == "batch":
            batch = _Batch(action, rearm=rearm)
            try:
                status, error, outcome = batch.run()
            except SoftTimeLimitExceeded:
                status, error, outcome = batch.stopped()
                stopped = True
        else:
            status, error, outcome = _run_step(session, {"type": action.type, **action.params})
    except SoftTimeLimitExceeded:
        status, error, outcome = ActionStatus.ERRORED, "The action took too long and was stopped.", {}
        stopped = True
    action_finish(action, status, error=error, outcome=outcome)
    finished = timezone.now()
    if (finished - now).total_seconds() > 1:
        # Accepting it moved the idle timer already; short ones need no second write.
        session_activity_record(session=session, at=finished)
    if stopped:
        raise SoftTimeLimitExceeded()  # the drain stops here (actions_drain)


def _run_step(
    session: BrowserSession, action: dict[str, Any], *, room: int | None = None
) -> tuple[str, str, dict[str, Any]]:
    """Run one canonical action; return (status, error, outcome for the row), its result cut to
    `room` bytes of JSON (ACTION_RESULT_MAX_BYTES when not given)."""
    if action["type"] == "change_proxy":
        return _change_proxy(session, action)
    display = Display(session.display_width, session.display_height, session.display_scale)
    # The browser may take seconds: the pool lends the connection to another thread meanwhile.
    connection_release()
    try:
        outcome = run_action(
            handle=session.location, display=display, action=action, main_tab=session.main_tab_id
        )
    except BrowserError as exc:
        # A failed action may have left another tab current (a tab operation half done): the
        # next action asks the browser which tab is the main one.
        session_main_tab_record(session=session, tab_id="")
        shown = tenant_error_text(
            str(exc), webdriver_url=session.webdriver_url, webdriver_session_id=session.webdriver_session_id
        )
        if isinstance(exc, ActionFailed):
            # A code (e.g. blocked_address from the egress filter) is shown as the action's `code`.
            code = egress_error_code(exc)
            return ActionStatus.FAILED, shown, {"result": {"error_code": code}} if code else {}
        if isinstance(exc, BrowserGone):
            logger.warning("session %s: browser gone during %s: %s", session.pk, action["type"], exc)
            session_terminate(session_id=session.pk, reason=EndedReason.CRASHED, error=str(exc))
            return ActionStatus.ERRORED, "The browser is gone; the session has ended (crashed).", {}
        logger.warning("session %s: browser error during %s: %s", session.pk, action["type"], exc)
        return ActionStatus.ERRORED, f"The browser failed: {shown}", {}
    session_main_tab_record(session=session, tab_id=outcome.main_tab)
    stored = _stored_outcome(session, action, outcome)
    stored["result"] = result_fit(
        stored["result"], settings.ACTION_RESULT_MAX_BYTES if room is None else room
    )
    return ActionStatus.SUCCEEDED, "", stored


# The egress filter looks for changed route files this often (workers/egress/routes.py
# ROUTES_POLL_SECONDS) and then closes the browser's open connections: change_proxy answers after
# two of its rounds, so the next action's connections are new ones, through the new proxy.
_ROUTE_SWITCH_SECONDS = 0.4


def _change_proxy(session: BrowserSession, action: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Rewrite the browser's route file (no page work). Errored (refunded) when it cannot be."""
    credentials = {"username": "", "password": ""}
    try:
        if action.get("sealed"):
            opened = json.loads(
                state_open(state_id=CHANGE_PROXY_SEAL_ID, sealed=base64.b64decode(action["sealed"]))
            )
            credentials = {"username": str(opened["username"]), "password": str(opened["password"])}
    except (StateSealError, binascii.Error, ValueError, KeyError, TypeError):
        return ActionStatus.ERRORED, "The proxy's credentials could not be opened; nothing changed.", {}
    uid = proxy_routes.browser_uid(session.profile_dir) if session.backend == "local" else None
    if uid is None:
        return (
            ActionStatus.ERRORED,
            "This session's browser cannot take a proxy (it has no sandbox uid of its own); nothing changed.",
            {},
        )
    document = session_proxy_change(session_id=session.pk, proxy_url=action["proxy_url"], **credentials)
    try:
        proxy_routes.routes_write(uid=uid, document=document)
    except OSError as exc:
        logger.error("session %s: route file not written: %s", session.pk, exc.strerror)
        return ActionStatus.ERRORED, "The proxy could not be put in place; try again.", {}
    time.sleep(_ROUTE_SWITCH_SECONDS)
    return ActionStatus.SUCCEEDED, "", {"result": {"proxy_url": action["proxy_url"]}}


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def result_fit(result: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """The result as is when its JSON fits in `max_bytes`; else with its longest strings cut
    (html, scraped text) and "truncated": true. A result that still does not fit (a huge
    structure of small strings) is replaced by the flag alone."""
    size = _json_size(result)
    if size <= max_bytes:
        return result
    fitted: dict[str, Any] = json.loads(json.dumps(result))  # a copy to cut
    fitted["truncated"] = True
    for _ in range(8):
        size = _json_size(fitted)
        if size <= max_bytes:
            return fitted
        holder, key, text = _longest_string(fitted)
        if holder is None or not text:
            break
        # Characters are 1 to 6 bytes of JSON: keep the share of the string that fits.
        text_bytes = _json_size(text)
        holder[key] = text[: max(0, len(text) * (text_bytes - (size - max_bytes) - 64) // text_bytes)]
    if _json_size(fitted) <= max_bytes:
        return fitted
    return {"truncated": True}


def _longest_string(value: Any) -> tuple[Any, Any, str]:
    best: tuple[Any, Any, str] = (None, None, "")
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            if isinstance(child, str) and len(child) > len(best[2]):
                best = (node, key, child)
            elif isinstance(child, (dict, list)):
                stack.append(child)
    return best


def _stored_outcome(
    session: BrowserSession, action: dict[str, Any], outcome: ActionOutcome
) -> dict[str, Any]:
    result = dict(outcome.result)
    if outcome.screenshot_png is not None:
        result["screenshot_token"] = screenshot_save(outcome.screenshot_png)
        if action["type"] == "screenshot" and action.get("base64"):
            result["base64"] = True
    if outcome.display is not None:
        session_display_record(
            session=session,
            width=outcome.display.width,
            height=outcome.display.height,
            scale=outcome.display.scale,
        )
    return {
        "result": result,
        "executed_tab_id": outcome.executed_tab_id,
        "page_context": outcome.page_context,
    }


class _Batch:
    """A batch's steps in order, stopping at the first that does not succeed; each step's outcome
    is recorded as it finishes (action_progress_record), so that whatever ends the batch early (a
    lost worker, the drain's time limit) refunds only the steps that never ran."""

    def __init__(self, action: Action, *, rearm: Callable[[], Any]) -> None:
        self.action = action
        self.steps: list[dict[str, Any]] = action.params["actions"]
        self.rearm = rearm
        self.results: list[dict[str, Any]] = []
        self.running: int | None = None  # the step in progress
        self.result_bytes = 0  # of the steps' results so far, as JSON

    def _outcome(self) -> dict[str, Any]:
        completed = sum(1 for r in self.results if r["status"] == ActionStatus.SUCCEEDED)
        return {"result": {"steps": self.results, "completed": completed}}

    def run(self) -> tuple[str, str, dict[str, Any]]:
        session = self.action.session
        deadline = time.monotonic() + settings.ACTION_BATCH_MAX_SECONDS
        for index, step in enumerate(self.steps):
            if index and time.monotonic() > deadline:
                return (
                    ActionStatus.FAILED,
                    f"The batch ran longer than {settings.ACTION_BATCH_MAX_SECONDS} s; steps {index} "
                    f"to {len(self.steps) - 1} did not run and were not charged.",
                    self._outcome(),
                )
            self.rearm()
            self.running = index
            # All steps' results together stay within ACTION_RESULT_MAX_BYTES.
            room = max(0, settings.ACTION_RESULT_MAX_BYTES - self.result_bytes)
            step_status, step_error, outcome = _run_step(session, step, room=room)
            self.results.append({"type": step["type"], "status": step_status, "error": step_error, **outcome})
            self.result_bytes += _json_size(outcome.get("result"))
            self.running = None
            if step_status != ActionStatus.SUCCEEDED:
                return step_status, f"Step {index} ({step['type']}) failed: {step_error}", self._outcome()
            if index + 1 < len(self.steps):
                action_progress_record(action_id=self.action.pk, result=self._outcome()["result"])
        return ActionStatus.SUCCEEDED, "", self._outcome()

    def stopped(self) -> tuple[str, str, dict[str, Any]]:
        """The drain's time limit interrupted the step in progress: it ran (and is charged, like
        a page that timed out); the steps after it did not."""
        index = self.running if self.running is not None else len(self.results)
        if self.running is not None and len(self.results) == index:
            error = "The step took too long and was stopped."
            self.results.append(
                {"type": self.steps[index]["type"], "status": ActionStatus.FAILED, "error": error}
            )
        return ActionStatus.FAILED, f"Step {index} was stopped: the batch took too long.", self._outcome()


def actions_reconcile() -> dict[str, int]:
    """Beat, every SESSION_SWEEP_INTERVAL_SECONDS: settle what lost workers left, deliver what
    never reached a worker.

    An action whose lease ran out ends as an error and is refunded once; its session's lock is
    freed (its holder is gone) and its browser checked: alive, the session's queue runs on;
    gone, the session ends `crashed`. A queued action that no worker took within
    ACTION_REDELIVER_AFTER_SECONDS (the broker was down when it was accepted, or the message was
    lost with a worker) is sent again; a drain that finds it taken returns at once.
    """
    crashed = resumed = 0
    settled = action_leases_expire()
    for session_id in settled:
        get_redis().delete(lock_key(session_id))
        session = BrowserSession.objects.filter(pk=session_id, status__in=LIVE_STATUSES).first()
        if session is None:
            continue
        if not get_backend(session.backend).is_alive(session.location):
            crashed += session_terminate(
                session_id=session_id, reason=EndedReason.CRASHED, error="the browser exited"
            )
            continue
        session_main_tab_record(session=session, tab_id="")  # a lost action may have left any tab current
        dispatch.actions_run(session_id)
        resumed += 1
    undelivered = sessions_with_undelivered_actions()
    for session_id in undelivered:
        dispatch.actions_run(session_id)
    return {"leases_expired": len(settled), "crashed": crashed, "resumed": resumed,
            "redelivered": len(undelivered)}  # fmt: skip
