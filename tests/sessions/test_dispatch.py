"""The web side sends worker tasks by name: every name it sends must be a task workers run."""

from __future__ import annotations

import inspect
import re

from django.conf import settings

import workers.tasks  # noqa: F401  (registers the tasks, as a worker's start does)
from project.celery import app
from sessions import dispatch


def _names_in_source() -> set[str]:
    return set(re.findall(r"[\"'](workers\.tasks\.\w+)[\"']", inspect.getsource(dispatch)))


def test_every_task_name_the_dispatch_module_sends_is_a_registered_task():
    sent = _names_in_source()
    assert sent == set(dispatch.TASK_NAMES)  # every literal in the module is listed
    assert sent, "the dispatch module sends no task names"
    for name in sent:
        assert name in app.tasks, f"{name} is not a registered Celery task"
        assert name in settings.CELERY_TASK_ROUTES, f"{name} has no queue route"


def test_every_scheduled_task_is_registered_and_routed():
    app.finalize()  # adds the periodic tasks (project/celery.py)
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert scheduled
    for name in scheduled:
        assert name in app.tasks, f"{name} is scheduled but not a registered Celery task"
        assert name in settings.CELERY_TASK_ROUTES, f"{name} has no queue route"
