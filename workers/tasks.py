"""Celery tasks: adapters that take ids, re-fetch rows and call one service each.

The web side sends them by name (sessions/dispatch.py, project/celery.py's schedule): keep the
names (`workers.tasks.<function>`) stable, or change the routes in settings with them.

Every task is safe to run twice (acks are late, so a lost worker means a redelivery).
"""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from project.db import ConnectionBudgetExceeded, connection_budget_verify, pool_off_in_this_process
from sessions import page_logs as session_page_logs
from sessions import recordings, saved_state, screenshots, time_billing
from sessions import services as session_services
from sessions.browser_state import hosts_dead_reap
from workers import (  # noqa: F401  (job_tasks, webhook_tasks, drains: see below)
    action_runner,
    drains,
    host_heartbeat,
    job_tasks,
    page_logs,
    recording_export,
    screencast,
    services,
    webhook_tasks,
)
from workers.browser import TransientBrowserError
from workers.browser.local import become_subreaper

# The batch job tasks live in workers/job_tasks.py, the webhook deliveries in
# workers/webhook_tasks.py; importing them above registers them wherever
# these tasks are discovered (workers, Beat, and the checks in tests/sessions/test_dispatch.py).
# Importing workers/drains.py adds the actions worker's drain threads to every worker's
# bootsteps (they start only in a worker that consumes an actions queue).

logger = logging.getLogger(__name__)

# Every attempt of a start (workers/services.py session_browser_start) fits in the limits, after
# its wait for a start slot (at most the create's), and a start may restore a saved state
# (environment_id) after the browser is up.
_START_LIMIT = (
    (settings.BROWSER_START_TIMEOUT_SECONDS + 15) * settings.BROWSER_START_ATTEMPTS
    + settings.SESSION_CREATE_WAIT_SECONDS
    + settings.SAVED_STATE_TIMEOUT_SECONDS
)
# A database that restarts under a task (it could not read its rows) is transient: sent again,
# the task finds what is still to do (an action drain claims what is still queued).
_DB_OUTAGE = (OperationalError, InterfaceError)


@task_prerun.connect
def _retire_old_connections(**_: object) -> None:
    # What Django does around each request: drop connections past CONN_MAX_AGE or broken.
    close_old_connections()


@task_postrun.connect
def _retire_or_release_connection(**_: object) -> None:
    if threading.current_thread() is threading.main_thread():
        close_old_connections()  # prefork: one connection per process, reused across tasks
    else:
        # The actions worker's thread pool: Django connections are per thread, and 32 idle
        # threads must not hold 32 PostgreSQL connections. A task gives its connection back to
        # the process's pool (project/db.py; without a pool this closes it).
        connection.close()


@worker_init.connect
def _pool_per_process_kind(sender: object, **_: object) -> None:
    # A worker whose configuration could exhaust PostgreSQL's connections does not start
    # (SystemExit: Celery logs and ignores a signal handler's ordinary exceptions).
    try:
        connection_budget_verify()
    except ConnectionBudgetExceeded as exc:
        logger.critical("%s", exc)
        raise SystemExit(78) from exc  # EX_CONFIG
    # Before a prefork worker forks its children (the pool may still be a name here).
    pool_cls = getattr(sender, "pool_cls", None)
    kind = pool_cls if isinstance(pool_cls, str) else getattr(pool_cls, "__module__", "")
    if "prefork" in kind:
        pool_off_in_this_process()


@worker_process_init.connect
def _adopt_browser_helpers(**_: object) -> None:
    become_subreaper()


__all__ = ["host_heartbeat"]  # imported for its worker signals (heartbeat, pool shutdown)


@shared_task(
    acks_late=True,
    soft_time_limit=_START_LIMIT,
    time_limit=_START_LIMIT + 10,
    autoretry_for=(TransientBrowserError,),
    max_retries=2,
    retry_backoff=True,
)
def session_start(session_id: str) -> None:
    services.session_browser_start(session_id=session_id)


@shared_task(
    acks_late=True,
    # A persistent session's state is saved before its browser stops.
    soft_time_limit=60 + settings.SAVED_STATE_TIMEOUT_SECONDS,
    time_limit=90 + settings.SAVED_STATE_TIMEOUT_SECONDS,
    # Stopping is safe to repeat; a connection that died with a database restart is not a reason
    # to leave a browser running (the retry gets a fresh one).
    autoretry_for=(TransientBrowserError, OperationalError, InterfaceError),
    max_retries=3,
    retry_backoff=True,
)
def session_stop(session_id: str) -> None:
    services.session_browser_stop(session_id=session_id)


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def sessions_stop(session_ids: list[str]) -> None:
    """session_stop for several sessions (the sweep ends many at once)."""
    for session_id in session_ids:
        try:
            services.session_browser_stop(session_id=session_id)
        except TransientBrowserError as exc:
            # Left unreleased: reconcile sends this one's stop again (its lost-stop check).
            logger.warning("session %s: stop failed, reconcile retries it: %s", session_id, exc)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def sessions_sweep() -> int:
    # Also forgets dead hosts: the sweep runs every few seconds, so a dead host's sessions end
    # within HOST_DEAD_AFTER_SECONDS + SESSION_SWEEP_INTERVAL_SECONDS.
    hosts_dead_reap()
    return session_services.sessions_sweep()


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def browsers_reconcile() -> dict[str, int]:
    return services.browsers_reconcile()


@shared_task(
    acks_late=True,
    # The display, then a saved state's restore (environment_id).
    soft_time_limit=30 + settings.SAVED_STATE_TIMEOUT_SECONDS,
    time_limit=40 + settings.SAVED_STATE_TIMEOUT_SECONDS,
    autoretry_for=_DB_OUTAGE,
    max_retries=3,
    retry_backoff=1,
)
def session_adopt(session_id: str) -> None:
    """Apply the session's display to the warm browser it claimed and mark it ready."""
    services.session_browser_adopt(session_id=session_id)


@shared_task(acks_late=True, soft_time_limit=_START_LIMIT * 4, time_limit=_START_LIMIT * 4 + 10)
def pool_refill(host: str) -> int:
    return services.pool_refill(host=host)


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def host_reconcile(host: str) -> dict[str, int]:
    return services.host_reconcile(host=host)


@shared_task(
    acks_late=True,
    soft_time_limit=settings.ACTION_DRAIN_TIME_LIMIT_SECONDS,
    time_limit=settings.ACTION_DRAIN_TIME_LIMIT_SECONDS + 60,
    autoretry_for=_DB_OUTAGE,
    max_retries=5,
    retry_backoff=1,
    retry_backoff_max=8,
)
def actions_run(session_id: str) -> None:
    """Run the session's queued actions in order (see workers/action_runner.py). Sessions send
    drain requests now (workers/drains.py); this task takes what an earlier version queued."""
    action_runner.actions_drain(session_id=session_id)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def actions_reconcile() -> dict[str, int]:
    return action_runner.actions_reconcile()


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def screenshots_purge() -> int:
    return screenshots.screenshots_purge()


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def sessions_bill_time() -> dict[str, int]:
    return time_billing.sessions_bill_time()


@shared_task(
    acks_late=True,
    soft_time_limit=settings.SAVED_STATE_TIMEOUT_SECONDS + 15,
    time_limit=settings.SAVED_STATE_TIMEOUT_SECONDS + 30,
)
def session_state_save(session_id: str, token: str) -> None:
    """Save a live persistent session's state now (POST /computers/{id}/state)."""
    services.session_state_save_live(session_id=session_id, token=token)


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def saved_states_purge() -> int:
    return saved_state.saved_states_purge()


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def page_logs_purge() -> int:
    """Delete the logs of sessions ended more than SESSION_LOGS_RETENTION_DAYS ago (a batch a run)."""
    return session_page_logs.page_logs_purge()


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def recordings_finalize() -> int:
    """Settle the recordings of ended sessions: `ready` or `failed`, never left `recording`; send
    again the MP4 exports whose message or worker was lost (never left `processing`)."""
    for session_id in recordings.recording_exports_stale():
        recording_export_mp4.delay(session_id)
    return recordings.recordings_finalize_due()


# Above RECORDING_EXPORT_TIMEOUT_SECONDS (ffmpeg's own limit), which the claim outlives.
@shared_task(
    acks_late=True,
    soft_time_limit=settings.RECORDING_EXPORT_TIMEOUT_SECONDS + 30,
    time_limit=settings.RECORDING_EXPORT_TIMEOUT_SECONDS + 45,
)
def recording_export_mp4(session_id: str) -> str | None:
    """Encode a ready recording's MP4 (asked for by `GET .../recording?format=mp4`)."""
    return recording_export.recording_export_mp4(session_id=session_id)


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def recordings_purge() -> int:
    """Delete recordings finished more than RECORDING_RETENTION_DAYS ago (files and rows)."""
    return recordings.recordings_purge()
