"""The one way the web side (and Beat's services) hands work to workers: tasks sent by name.

`sessions` sits below `workers`, so it never imports the task functions: it sends their names
(routed to queues by name in settings.CELERY_TASK_ROUTES), after the current transaction
commits, so a worker never looks for a row that is not there yet. Outside a transaction the
task is sent at once. tests/sessions/test_dispatch.py checks every name here is a registered task.

Actions are the exception: the hot path. An accepted action's session id is pushed onto a Redis
list that the actions workers' drain threads pop (project/queues.py `drain_list`,
workers/drains.py), with no Celery message around it.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction

from project.celery import app
from project.memo import BoundedMemo
from project.queues import ACTIONS, drain_list
from sessions.events import Entry, session_events_publish_then
from sessions.models import BrowserSession

SESSION_START = "workers.tasks.session_start"
SESSION_STOP = "workers.tasks.session_stop"
SESSIONS_STOP = "workers.tasks.sessions_stop"
SESSION_ADOPT = "workers.tasks.session_adopt"
# Still a task, for messages queued by an earlier version; actions are sent as drain requests
# (`actions_run` below, workers/drains.py).
ACTIONS_RUN = "workers.tasks.actions_run"
POOL_REFILL = "workers.tasks.pool_refill"
HOST_RECONCILE = "workers.tasks.host_reconcile"
STATE_SAVE = "workers.tasks.session_state_save"
RECORDING_EXPORT = "workers.tasks.recording_export_mp4"


def host_queue(host: str) -> str:
    """The queue of one host's lifecycle worker (starts, stops, pool refills, reconcile)."""
    return f"host.{host}"


def host_actions_queue(host: str) -> str:
    """The queue of one host's actions worker (actions, adopting a warm browser)."""
    return f"actions.{host}"


TASK_NAMES = (
    SESSION_START,
    SESSION_STOP,
    SESSIONS_STOP,
    SESSION_ADOPT,
    ACTIONS_RUN,
    POOL_REFILL,
    HOST_RECONCILE,
    STATE_SAVE,
    RECORDING_EXPORT,
)


def _send_after_commit(name: str, *args: str, queue: str | None = None, expires: float | None = None) -> None:
    # queue None: the task's route in settings.CELERY_TASK_ROUTES.
    transaction.on_commit(lambda: app.send_task(name, args=args, queue=queue, expires=expires))


def browser_start(session_id: str, *, host: str = "") -> None:
    """Have a worker (of `host`, if placed there) start the session's browser and mark it ready."""
    _send_after_commit(SESSION_START, session_id, queue=host_queue(host) if host else None)


def browser_adopt(session_id: str, *, host: str) -> None:
    """Have `host` apply the session's display to the warm browser it claimed and mark it ready.

    On the host's actions worker: one DevTools command, never queued behind browser starts.
    """
    _send_after_commit(SESSION_ADOPT, session_id, queue=host_actions_queue(host))


def browser_stop(session_id: str, *, host: str = "", backend: str = "") -> None:
    """Have a worker (the browser's host, for a local one) free the ended session's browser and
    settle its time."""
    local_host = host if host and backend != "grid" else ""
    _send_after_commit(SESSION_STOP, session_id, queue=host_queue(local_host) if local_host else None)


# Stops per message when many sessions end at once (the sweep): 10,000 ends are 400 messages,
# and one message's stops take a worker a second or two.
STOPS_PER_MESSAGE = 25


def browser_stop_many(sessions: list[tuple[str, str, str]]) -> None:
    """browser_stop for many ended sessions, given as (id, host, backend), a few per message."""
    by_queue: dict[str | None, list[str]] = {}
    for session_id, host, backend in sessions:
        local_host = host if host and backend != "grid" else ""
        by_queue.setdefault(host_queue(local_host) if local_host else None, []).append(session_id)
    for queue, ids in by_queue.items():
        for at in range(0, len(ids), STOPS_PER_MESSAGE):
            chunk = ids[at : at + STOPS_PER_MESSAGE]
            transaction.on_commit(partial(app.send_task, SESSIONS_STOP, args=(chunk,), queue=queue))


# Session id -> actions queue. A session's host never changes once its browser is up, so the
# look-up is done once per session and process.
_action_queues: BoundedMemo[str, str] = BoundedMemo(10_000)


def _actions_queue_of(session_id: str) -> str | None:
    queue = _action_queues.get(session_id)
    if queue is not None:
        return queue
    row = BrowserSession.objects.filter(pk=session_id).values_list("backend", "host").first()
    if row is None or not row[0]:
        return None  # not up yet: no route to remember
    backend, host = row
    if backend == "local":
        # A local browser's chromedriver listens on its host's loopback: only that host can drive it.
        if not host:
            return None
        queue = host_actions_queue(host)
    else:
        queue = ACTIONS  # a Grid's browser: any actions worker (its rows have no host to remember)
    _action_queues.put(session_id, queue)
    return queue


def actions_run(session_id: str) -> None:
    """Have a worker (of the session's host, for a local browser) run its queued actions, in order:
    a drain request (workers/drains.py), sent after the current transaction commits."""
    actions_run_announced(session_id, [])


def actions_run_announced(session_id: str, events: list[Entry]) -> None:
    """`actions_run`, with the session's `events` (sessions/events.py) appended first, in the same
    Redis round trip: a watcher sees an action's request before any worker can run it. An event
    that cannot be written is logged; a request that cannot be sent raises."""
    drains = drain_list(_actions_queue_of(session_id) or ACTIONS)
    transaction.on_commit(
        lambda: session_events_publish_then(events, lambda pipe: pipe.lpush(drains, session_id))
    )


def pool_refill(host: str, *, expires: float | None = None) -> None:
    """Have `host` start the pool browsers it lacks (and recycle old ones)."""
    _send_after_commit(POOL_REFILL, host, queue=host_queue(host), expires=expires)


def host_reconcile(host: str, *, expires: float | None = None) -> None:
    """Have `host` compare its sessions' and pool's rows with its own browser processes."""
    _send_after_commit(HOST_RECONCILE, host, queue=host_queue(host), expires=expires)


def state_save(session_id: str, token: str) -> None:
    """Have the worker that drives the session's browser save its state now (POST .../state);
    it signals `token` when done (sessions/saved_state.py)."""
    _send_after_commit(STATE_SAVE, session_id, token, queue=_actions_queue_of(session_id))


def recording_export(session_id: str) -> None:
    """Have a worker encode the recording's MP4 (the maintenance queue: ffmpeg, never an action)."""
    _send_after_commit(RECORDING_EXPORT, session_id)
