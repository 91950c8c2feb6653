"""Database helpers shared by every app: a bounded retry of a transaction that lost a conflict;
the process's connection pool."""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back as a
# whole and may simply run again.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})
CONFLICT_ATTEMPTS = 3


def is_conflict(exc: BaseException) -> bool:
    return getattr(getattr(exc, "__cause__", None), "sqlstate", None) in CONFLICT_SQLSTATES


def retry_on_conflict(func: Callable[P, R]) -> Callable[P, R]:
    """Run `func` (one whole transaction) again when PostgreSQL rolled it back for a deadlock or a
    serialization failure: at most CONFLICT_ATTEMPTS times, with a short random pause.

    Only the outermost transaction can be retried (inside another one, the rollback undid the
    caller's work too), so inside an atomic block the error goes up unchanged. Work sent out of
    the process belongs in `transaction.on_commit`, which a rolled-back attempt never runs.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                if attempt == CONFLICT_ATTEMPTS or connection.in_atomic_block or not is_conflict(exc):
                    raise
                logger.warning("%s lost a conflict (attempt %d), running it again: %s",
                               func.__qualname__, attempt, exc)  # fmt: skip
                time.sleep(random.uniform(0.005, 0.05) * attempt)  # noqa: S311 (jitter, not a secret)
        raise AssertionError("unreachable")

    return wrapper


def pool_enabled() -> bool:
    """Whether this process keeps its connections in a psycopg pool (settings POSTGRES_POOL_SIZE)."""
    return bool(connections[DEFAULT_DB_ALIAS].settings_dict["OPTIONS"].get("pool"))


def connection_release() -> None:
    """Give this thread's connection back to the pool while it waits for something else (a
    browser, a completion signal), so that connections follow database work, not threads.
    Without a pool, or inside a transaction, it keeps it."""
    if pool_enabled() and not connection.in_atomic_block:
        connection.close()


def pool_off_in_this_process() -> None:
    """A prefork worker (one thread per process): no pool, one persistent connection per process.

    Called in the worker's main process before it forks its children: a pool's threads and
    sockets do not survive a fork, and a pool of one per child would only add threads.
    """
    wrapper = connections[DEFAULT_DB_ALIAS]
    if not pool_enabled():
        return
    wrapper.close()
    close_pool = getattr(wrapper, "close_pool", None)  # PostgreSQL's wrapper only
    if close_pool is not None:
        close_pool()
    wrapper.settings_dict["OPTIONS"].pop("pool", None)
    wrapper.settings_dict["CONN_MAX_AGE"] = settings.POSTGRES_CONN_MAX_AGE
    logger.info("prefork worker: no connection pool, one persistent connection per process")


def connection_budget() -> dict[str, int]:
    """The most PostgreSQL connections the configured processes can hold at once, by process kind.

    Threaded processes (web, the actions worker) hold at most their pool (POSTGRES_POOL_SIZE);
    prefork ones one connection per child plus their main process; Beat one. Worker processes
    are counted once per worker host (WORKER_HOSTS), web processes once (WEB_WORKERS is the total
    of all web machines). docs/database-connections.md explains the sum.
    """
    pool = settings.POSTGRES_POOL_SIZE
    per_thread_process = pool if pool else None
    hosts = settings.WORKER_HOSTS
    return {
        # Without a pool, every thread may hold one.
        "web": settings.WEB_WORKERS * (per_thread_process or settings.WEB_THREADS),
        # Its drain threads (workers/drains.py) and its Celery pool's, ACTION_THREADS each.
        "actions workers": hosts * (per_thread_process or 2 * settings.ACTION_THREADS),
        "lifecycle workers": hosts * (settings.LIFECYCLE_CONCURRENCY + 1),
        "jobs workers": hosts * (settings.JOBS_WORKER_CONCURRENCY + 1),
        "webhooks workers": hosts * (settings.WEBHOOKS_WORKER_CONCURRENCY + 1),
        "beat": 1,
        "margin (POSTGRES_CONNECTION_MARGIN)": settings.POSTGRES_CONNECTION_MARGIN,
    }


class ConnectionBudgetExceeded(ImproperlyConfigured):
    pass


def connection_budget_check(*, max_connections: int, reserved: int) -> int:
    """Raise ConnectionBudgetExceeded when the configured processes could open more connections
    than the server admits (max_connections less its superuser_reserved_connections); return the
    total otherwise."""
    parts = connection_budget()
    total = sum(parts.values())
    admitted = max_connections - reserved
    if total > admitted:
        shown = ", ".join(f"{name} {count}" for name, count in parts.items())
        raise ConnectionBudgetExceeded(
            f"The configured processes may open {total} PostgreSQL connections ({shown}), but the "
            f"server admits {admitted} (max_connections {max_connections} less {reserved} reserved). "
            "Lower POSTGRES_POOL_SIZE, WEB_WORKERS, LIFECYCLE_CONCURRENCY, JOBS_WORKER_CONCURRENCY, "
            "WEBHOOKS_WORKER_CONCURRENCY or WORKER_HOSTS, raise max_connections, or put PgBouncer in front "
            "(docs/database-connections.md)."
        )
    return total


def connection_budget_verify() -> None:
    """At a process's start: check the budget against the server's limits. Read on a connection
    of its own (not the pool's, which may not exist yet); a database that does not answer is left
    to the process's own retries."""
    import psycopg

    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    params.pop("pool", None)
    try:
        with psycopg.connect(**params, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT current_setting('max_connections')::int, "
                "current_setting('superuser_reserved_connections')::int"
            ).fetchone()
    except psycopg.Error as exc:
        logger.warning("connection budget not checked: the database did not answer (%s)", exc)
        return
    assert row is not None
    total = connection_budget_check(max_connections=row[0], reserved=row[1])
    logger.info("connection budget: at most %d of max_connections %d", total, row[0])
