"""The jobs app sends worker tasks by name (jobs/dispatch.py): every name it sends must be a task
workers run, with a queue route; and every route must name a task that exists (issue 18 §3)."""

from __future__ import annotations

import inspect
import re

from django.conf import settings

import workers.tasks  # noqa: F401  (registers the tasks, as a worker's start does)
from jobs import dispatch
from project.celery import app


def test_every_task_name_the_jobs_dispatch_module_sends_is_a_registered_and_routed_task():
    sent = set(re.findall(r"[\"'](workers\.job_tasks\.\w+)[\"']", inspect.getsource(dispatch)))
    assert sent and sent == set(dispatch.TASK_NAMES)  # every literal in the module is listed
    for name in sent:
        assert name in app.tasks, f"{name} is not a registered Celery task"
        assert name in settings.CELERY_TASK_ROUTES, f"{name} has no queue route"


def test_every_routed_task_exists():
    for name in settings.CELERY_TASK_ROUTES:
        assert name in app.tasks, f"settings.CELERY_TASK_ROUTES routes {name}, which no worker runs"
