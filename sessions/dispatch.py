"""The one way the web side (and Beat's services) hands work to workers: tasks sent by name.

`sessions` sits below `workers`, so it never imports the task functions: it sends their names
(routed to queues by name in settings.CELERY_TASK_ROUTES), after the current transaction
commits, so a worker never looks for a row that is not there yet. Outside a transaction the
task is sent at once. tests/sessions/test_dispatch.py checks every name here is a registered task.
"""

from __future__ import annotations

from django.db import transaction

from project.celery import app

SESSION_START = "workers.tasks.session_start"
SESSION_STOP = "workers.tasks.session_stop"
ACTIONS_RUN = "workers.tasks.actions_run"

TASK_NAMES = (SESSION_START, SESSION_STOP, ACTIONS_RUN)


def _send_after_commit(name: str, session_id: str) -> None:
    transaction.on_commit(lambda: app.send_task(name, args=(session_id,)))


def browser_start(session_id: str) -> None:
    """Have a worker start the session's browser and mark it ready."""
    _send_after_commit(SESSION_START, session_id)


def browser_stop(session_id: str) -> None:
    """Have a worker free the ended session's browser and settle its time."""
    _send_after_commit(SESSION_STOP, session_id)


def actions_run(session_id: str) -> None:
    """Have a worker run the session's queued actions, in order."""
    _send_after_commit(ACTIONS_RUN, session_id)
