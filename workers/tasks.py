"""Celery tasks: adapters that take ids, re-fetch rows and call one service each.

Every task is safe to run twice (acks are late, so a lost worker means a redelivery).
"""

from __future__ import annotations

from celery import shared_task
from celery.signals import task_postrun, task_prerun, worker_process_init
from django.conf import settings
from django.db import close_old_connections

from workers import services
from workers.browser import TransientBrowserError

_START_LIMIT = settings.BROWSER_START_TIMEOUT_SECONDS + 15


@task_prerun.connect
@task_postrun.connect
def _retire_old_connections(**_: object) -> None:
    # What Django does around each request: drop connections past CONN_MAX_AGE or broken.
    close_old_connections()


@worker_process_init.connect
def _adopt_browser_helpers(**_: object) -> None:
    from workers.browser.local import become_subreaper

    become_subreaper()


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
    soft_time_limit=60,
    time_limit=90,
    autoretry_for=(TransientBrowserError,),
    max_retries=3,
    retry_backoff=True,
)
def session_stop(session_id: str) -> None:
    services.session_browser_stop(session_id=session_id)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def sessions_sweep() -> int:
    from sessions.services import sessions_sweep as sweep

    return sweep()


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def browsers_reconcile() -> dict[str, int]:
    return services.browsers_reconcile()


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def actions_run(session_id: str) -> None:
    """Run the session's queued actions in order (see workers/actions.py)."""
    from workers.actions import actions_drain

    actions_drain(session_id=session_id)


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def screenshots_purge() -> int:
    from sessions.screenshots import screenshots_purge as purge

    return purge()


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def sessions_bill_time() -> dict[str, int]:
    from billing.services import sessions_bill_time as bill

    return bill()
