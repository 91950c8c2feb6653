"""Drain requests (workers/drains.py): what the actions worker's drain threads do with them.

The whole path (an accept's request popped by a real worker's thread) runs in every flow test of
actions; here the threads' own rules, with real Redis and PostgreSQL and `actions_drain` replaced
where a browser would be needed."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from accounts.services import account_create
from project.queues import drain_list, drain_queues
from project.redis import get_redis
from sessions.action_queue import action_finish, action_submit
from sessions.models import Action, ActionStatus
from tests.support.processes import wait_until
from tests.support.rows import session_row
from workers import action_runner, drains

HOST_LIST = drain_list("actions.drain-test")
SHARED_LIST = drain_list("actions")


@pytest.fixture
def lists():
    get_redis().delete(HOST_LIST, SHARED_LIST)
    yield [HOST_LIST, SHARED_LIST]
    get_redis().delete(HOST_LIST, SHARED_LIST)


class _Drained:
    """Stands in for actions_drain: records the sessions drained, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, fail_first: int = 0) -> None:
        self.sessions: list[str] = []
        self.calls = 0
        self._fail_first = fail_first
        monkeypatch.setattr(drains, "actions_drain", self)

    def __call__(self, *, session_id: str, stopping: threading.Event) -> None:
        self.calls += 1
        if self.calls <= self._fail_first:
            raise OperationalError("the database restarted")
        self.sessions.append(session_id)


def _run_thread(lists: list[str], stopping: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=drains.drain_forever, args=(lists,), kwargs={"stopping": stopping})
    thread.start()
    return thread


def test_the_workers_drain_lists_are_its_hosts_own_then_the_shared_one():
    consumed = ["actions", "actions.h1", "maintenance"]
    assert drain_queues(consumed) == ["actions.h1", "actions"]
    assert drain_queues(["lifecycle", "host.h1"]) == []  # the lifecycle pool drains nothing


def test_a_thread_drains_each_request_and_serves_its_hosts_list_first(lists, monkeypatch):
    drained = _Drained(monkeypatch)
    get_redis().lpush(SHARED_LIST, "comp_shared")
    get_redis().lpush(HOST_LIST, "comp_a", "comp_b")  # comp_a was pushed first
    stopping = threading.Event()
    thread = _run_thread(lists, stopping)
    try:
        wait_until(lambda: len(drained.sessions) == 3, timeout=10, message="three drains")
    finally:
        stopping.set()
        thread.join(5)
    assert drained.sessions == ["comp_a", "comp_b", "comp_shared"]
    assert not thread.is_alive()  # a stopping thread ends within its pop's timeout


def test_a_thread_keeps_asking_while_redis_does_not_answer(lists, monkeypatch):
    drained = _Drained(monkeypatch)
    client = get_redis()
    real_brpop = client.brpop
    refusals = {"left": 3}

    def brpop(keys: Any, timeout: Any = 0) -> Any:
        if refusals["left"]:
            refusals["left"] -= 1
            raise RedisConnectionError("Connection refused")
        return real_brpop(keys, timeout=timeout)

    monkeypatch.setattr(client, "brpop", brpop)
    monkeypatch.setattr(drains, "REDIS_RETRY_SECONDS", 0.05)
    get_redis().lpush(HOST_LIST, "comp_after_outage")
    stopping = threading.Event()
    thread = _run_thread(lists, stopping)
    try:
        wait_until(lambda: drained.sessions, timeout=10, message="the drain after Redis came back")
    finally:
        stopping.set()
        thread.join(5)
    assert refusals["left"] == 0 and drained.sessions == ["comp_after_outage"]


def test_a_drain_that_meets_a_database_outage_is_tried_again(db, monkeypatch):
    drained = _Drained(monkeypatch, fail_first=2)
    monkeypatch.setattr(drains, "DB_RETRY_FIRST_SECONDS", 0.01)
    drains.drain_once("comp_db", stopping=threading.Event())
    assert drained.calls == 3 and drained.sessions == ["comp_db"]


def test_a_drain_that_keeps_meeting_the_outage_is_left_to_beats_redelivery(db, monkeypatch, caplog):
    drained = _Drained(monkeypatch, fail_first=100)
    monkeypatch.setattr(drains, "DB_RETRY_FIRST_SECONDS", 0.01)
    drains.drain_once("comp_db", stopping=threading.Event())
    assert drained.calls == drains.DB_ATTEMPTS and drained.sessions == []
    assert "Beat's reconcile delivers its actions again" in caplog.text


def _worker(queues: list[str], concurrency: int) -> Any:
    return SimpleNamespace(
        app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=dict.fromkeys(queues)))),
        concurrency=concurrency,
    )


def test_the_actions_worker_runs_one_drain_thread_per_pool_thread_and_stops_them(lists, monkeypatch):
    drained = _Drained(monkeypatch)
    worker = _worker(["actions", "actions.drain-test", "maintenance"], concurrency=3)
    step = drains.ActionDrains(worker)
    step.start(worker)
    try:
        assert len(step.threads) == 3 and all(t.is_alive() for t in step.threads)
        get_redis().lpush(HOST_LIST, *[f"comp_{n}" for n in range(6)])
        wait_until(lambda: len(drained.sessions) == 6, timeout=10, message="six drains")
    finally:
        step.stop(worker)
    assert step.threads == []  # all joined
    assert sorted(drained.sessions) == [f"comp_{n}" for n in range(6)]


def test_a_worker_without_an_actions_queue_runs_no_drain_thread(monkeypatch):
    _Drained(monkeypatch)
    worker = _worker(["lifecycle", "host.drain-test"], concurrency=2)
    step = drains.ActionDrains(worker)
    step.start(worker)
    assert step.threads == []
    step.stop(worker)


@pytest.fixture
def session(plans):
    account = account_create(name="drain-stop", plan_name="enterprise", credits=10**6)[0]
    row = session_row(account, status="ready", host="h", webdriver_session_id="x")  # not local: shared list
    get_redis().delete(SHARED_LIST)
    yield account, row
    get_redis().delete(SHARED_LIST, action_runner.lock_key(row.pk))


def test_a_drain_whose_worker_stops_ends_after_its_action_and_hands_the_rest_on(
    session, monkeypatch, django_capture_on_commit_callbacks
):
    account, row = session
    first = action_submit(session_id=row.pk, account=account, action={"type": "wait", "ms": 0})
    second = action_submit(session_id=row.pk, account=account, action={"type": "wait", "ms": 0})
    get_redis().delete(SHARED_LIST)  # the accepts' own requests: the drain below stands for them
    stopping = threading.Event()

    def run_one(action: Action, *, rearm: Any) -> None:  # the worker is told to stop meanwhile
        stopping.set()
        action_finish(action, ActionStatus.SUCCEEDED, outcome={"result": {}})

    monkeypatch.setattr(action_runner, "_run_one", run_one)
    with django_capture_on_commit_callbacks(execute=True):  # the test's transaction never commits
        action_runner.actions_drain(session_id=row.pk, stopping=stopping)
    statuses = dict(Action.objects.filter(session=row).values_list("public_id", "status"))
    assert statuses == {first.public_id: "succeeded", second.public_id: "queued"}
    # The rest of the queue is handed on: a new request, for whichever worker takes it next.
    assert get_redis().lrange(SHARED_LIST, 0, -1) == [row.pk.encode()]
    assert not get_redis().exists(action_runner.lock_key(row.pk))
