"""Drain threads: how an accepted action reaches the worker that runs it.

The web pushes the session's id onto a Redis list, one per actions queue (project/queues.py
`drain_list`: the host's own for a local browser, the shared one otherwise), after the accept's
commit (sessions/dispatch.py `actions_run`). Each actions worker runs as many drain threads as
its pool has threads (`-c`, ACTION_THREADS); each blocks on BRPOP over its host's list and the
shared one, and runs the popped session's queue itself (workers/action_runner.py
`actions_drain`): Redis wakes one waiting thread, and the action runs on it, with no hand-off.

Before, every action was a Celery task: the consumer's read and decode, a hand-off to a pool
thread, the unacked bookkeeping and the ack, about a millisecond of each action's path here
(docs/benchmarks.md, "Wave 4 session 8"). What Celery's late acks gave, a request that is never
lost, the actions' own rows give: a drain request is only a wake-up, and one lost with its worker
leaves its actions queued, which Beat's actions_reconcile sends again after
ACTION_REDELIVER_AFTER_SECONDS (a running one's lease runs out and is settled the same way).

Stopping (the worker's warm shutdown) the threads take no new request; a drain under way ends
after its current action and hands the rest of its queue on in a new request, which the next
worker of the host takes. A cold shutdown does not wait for them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import bootsteps
from django.db import InterfaceError, OperationalError, close_old_connections, connection
from redis.exceptions import RedisError

from project.celery import app
from project.queues import drain_list, drain_queues
from project.redis import get_redis
from workers.action_runner import actions_drain

logger = logging.getLogger(__name__)

# A blocked pop returns this often with nothing, so that a stopping thread notices.
POP_TIMEOUT_SECONDS = 1
# Redis away: how long a thread waits before it asks again.
REDIS_RETRY_SECONDS = 1.0
# A database that restarts under a drain: tried again after 1, 2, 4, 8 s, then left to Beat's
# redelivery (its actions are still queued).
DB_ATTEMPTS = 5
DB_RETRY_FIRST_SECONDS = 1.0
# A warm shutdown waits this long for the drains under way (each ends after its current action).
STOP_WAIT_SECONDS = 120.0

_DB_OUTAGE = (OperationalError, InterfaceError)


def drain_once(session_id: str, *, stopping: threading.Event) -> None:
    """Run `session_id`'s queued actions (actions_drain), around it what Celery's task signals did
    for the threads pool: connections past their age dropped before, given back to the process's
    pool after (workers/tasks.py)."""
    for attempt in range(DB_ATTEMPTS):
        close_old_connections()
        try:
            actions_drain(session_id=session_id, stopping=stopping)
            return
        except _DB_OUTAGE as exc:
            logger.warning("session %s: drain failed on the database (%r); trying again", session_id, exc)
        except Exception:
            logger.exception("session %s: drain failed", session_id)
            return
        finally:
            connection.close()
        if attempt + 1 < DB_ATTEMPTS and stopping.wait(min(DB_RETRY_FIRST_SECONDS * 2**attempt, 8.0)):
            break
    logger.warning("session %s: drain given up; Beat's reconcile delivers its actions again", session_id)


def drain_forever(lists: list[str], *, stopping: threading.Event) -> None:
    """One drain thread: pop a request from `lists` (first non-empty in order), drain, repeat."""
    client = get_redis()
    failing = False
    while not stopping.is_set():
        try:
            popped = client.brpop(lists, timeout=POP_TIMEOUT_SECONDS)
        except RedisError as exc:
            if not failing:
                logger.warning("drain requests: Redis does not answer (%r); asking again", exc)
            failing = True
            stopping.wait(REDIS_RETRY_SECONDS)
            continue
        if failing:
            logger.info("drain requests: Redis answers again")
            failing = False
        if popped is not None:
            session_id = popped[1]
            if isinstance(session_id, bytes):
                session_id = session_id.decode()
            drain_once(session_id, stopping=stopping)


class ActionDrains(bootsteps.StartStopStep):
    """The actions worker's drain threads (a worker that consumes no actions queue runs none).
    Started after the pool: a prefork pool forks its children first, never a process with them."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, worker: Any) -> None:
        queues = drain_queues(list(worker.app.amqp.queues.consume_from))
        if not queues:
            return
        lists = [drain_list(queue) for queue in queues]
        self.stopping.clear()
        for n in range(int(worker.concurrency)):
            thread = threading.Thread(
                target=drain_forever, args=(lists,), kwargs={"stopping": self.stopping},
                name=f"action-drain-{n}", daemon=True,
            )  # fmt: skip
            thread.start()
            self.threads.append(thread)
        logger.info("%d drain threads on %s", len(self.threads), ", ".join(lists))

    def stop(self, worker: Any) -> None:
        self.stopping.set()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        running = [t.name for t in self.threads if t.is_alive()]
        if running:
            logger.warning("drain threads still running at shutdown: %s", ", ".join(running))
        self.threads = [t for t in self.threads if t.is_alive()]

    def terminate(self, worker: Any) -> None:
        self.stopping.set()  # a cold shutdown: no wait


app.steps["worker"].add(ActionDrains)
