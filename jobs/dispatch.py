"""The jobs app hands work to workers by task name, after the current transaction commits.

`jobs` sits below `workers`, so it never imports the task functions: it sends their names
(routed to queues by name in settings.CELERY_TASK_ROUTES). tests/jobs/test_job_dispatch.py checks
every name here is a registered, routed task.
"""

from __future__ import annotations

from django.db import transaction

from project.celery import app

JOBS_DISPATCH = "workers.job_tasks.jobs_dispatch"

TASK_NAMES = (JOBS_DISPATCH,)


def _send_after_commit(name: str, *args: object) -> None:
    transaction.on_commit(lambda: app.send_task(name, args=list(args)))


def jobs_dispatch() -> None:
    """Have a worker give active jobs their browsers (jobs.services.jobs_admit) and start them."""
    _send_after_commit(JOBS_DISPATCH)
