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


def test_an_actions_drain_request_goes_to_the_list_of_whoever_can_drive_the_browser(
    db, plans, django_assert_num_queries, django_capture_on_commit_callbacks
):
    from accounts.services import account_create
    from project.redis import get_redis
    from tests.support.rows import session_row

    account = account_create(name="routes", plan_name="enterprise")[0]
    local = session_row(account, status="ready", backend="local", host="h1", webdriver_session_id="a")
    grid = session_row(account, status="ready", backend="grid", host="", webdriver_session_id="b")
    starting = session_row(account, status="starting", backend="", host="", webdriver_session_id="")
    redis = get_redis()
    redis.delete("bf:drain:actions.h1", "bf:drain:actions")
    try:
        with django_capture_on_commit_callbacks(execute=True):  # sent once committed
            for row in (local, grid, starting):
                dispatch.actions_run(row.pk)
        assert redis.lrange("bf:drain:actions.h1", 0, -1) == [local.pk.encode()]  # only its host
        assert sorted(redis.lrange("bf:drain:actions", 0, -1)) == sorted(
            [grid.pk.encode(), starting.pk.encode()]
        )
        # The route is looked up once per session and process: a Grid session's too (no host).
        with django_assert_num_queries(0), django_capture_on_commit_callbacks(execute=True):
            dispatch.actions_run(local.pk)
            dispatch.actions_run(grid.pk)
    finally:
        redis.delete("bf:drain:actions.h1", "bf:drain:actions")
