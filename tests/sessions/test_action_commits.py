"""An action's bookkeeping on the hot path: the worker's commits (claim, finish) do not wait for
the WAL flush and leave the pooled connection as it was; the accept's request event and the
action's task, and the finish's response event and the waiter's signal, each go in one Redis
round trip, the event first (issue 20, docs/benchmarks.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection, transaction
from redis import Redis

from accounts.services import account_create
from project.redis import get_redis
from sessions.action_queue import _accept, action_claim_next, action_event, action_finish, action_submit
from sessions.events import events_key
from sessions.models import ActionStatus, BrowserSession
from tests.support.rows import session_row

pytestmark = pytest.mark.django_db(transaction=True)


def _session() -> tuple[Any, BrowserSession]:
    account = account_create(name="commits", plan_name="enterprise", credits=10**6)[0]
    return account, session_row(account, status="ready", host="h", webdriver_session_id="x")


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()[0])


def _stream(session_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The session's action events (its status events left out)."""
    entries = get_redis().xrange(events_key(session_id))
    events = [(fields[b"event"].decode(), json.loads(fields[b"data"])) for _, fields in entries]
    return [(name, data) for name, data in events if name != "status"]


def test_claim_and_finish_commit_and_leave_the_connection_synchronous(plans: Any) -> None:
    account, session = _session()
    assert _accept(session_id=session.pk, account=account, action={"type": "wait", "ms": 0}, api_key=None)
    action, claimed = action_claim_next(session_id=session.pk) or (None, False)
    assert claimed and action is not None
    # The setting was the claim's transaction's own: the next transaction on this connection
    # (an accept, a refund) commits synchronously again.
    assert _synchronous_commit() == "on"
    assert action_finish(action, ActionStatus.SUCCEEDED, outcome={"result": {"ok": 1}})
    assert _synchronous_commit() == "on"
    # Committed, as seen from another connection.
    other = connection.copy()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT status FROM browser_sessions_action WHERE id = %s", [action.pk])
            assert cursor.fetchone()[0] == ActionStatus.SUCCEEDED
    finally:
        other.close()


def test_the_response_event_is_written_before_the_waiter_is_signalled(plans: Any) -> None:
    account, session = _session()
    action_submit(session_id=session.pk, account=account, action={"type": "wait", "ms": 0})
    action, _ = action_claim_next(session_id=session.pk) or (None, False)
    assert action is not None
    action_finish(action, ActionStatus.SUCCEEDED, outcome={"result": {}})
    events = _stream(session.pk)
    assert [(name, data.get("status")) for name, data in events] == [
        ("action_request", "queued"),
        ("action_response", "success"),
    ]
    signal = get_redis().lpop(f"bf:done:{action_event(action.public_id)}")
    assert signal is not None and json.loads(signal)["status"] == ActionStatus.SUCCEEDED


def test_a_finish_inside_a_transaction_writes_its_event_once_committed(plans: Any) -> None:
    account, session = _session()
    accepted = action_submit(session_id=session.pk, account=account, action={"type": "wait", "ms": 0})
    with transaction.atomic():
        action_finish(accepted, ActionStatus.CANCELLED, error="ended")
        assert [name for name, _ in _stream(session.pk)] == ["action_request"]
    assert [name for name, _ in _stream(session.pk)] == ["action_request", "action_response"]


def test_the_request_event_and_the_drain_request_go_in_one_round_trip_the_event_first(
    plans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.client import Pipeline

    sent: list[list[str]] = []
    real_execute = Pipeline.execute

    def execute(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        sent.append([str(command[0][0]) for command in self.command_stack])
        return real_execute(self, *args, **kwargs)

    get_redis().delete("bf:drain:actions")  # earlier tests' requests (no worker in the fast tier)
    monkeypatch.setattr(Pipeline, "execute", execute)
    monkeypatch.setattr(Redis, "execute_command", _refused_outside_pipelines(Redis.execute_command))
    account, session = _session()
    action = action_submit(session_id=session.pk, account=account, action={"type": "wait", "ms": 0})
    monkeypatch.undo()
    # The session's first action: its status event (ready -> running) too.
    assert sent == [["XADD", "EXPIRE", "XADD", "EXPIRE", "LPUSH"]]
    assert [name for name, _ in _stream(session.pk)] == ["action_request"]
    # A drain request (workers/drains.py); not a local browser: for any actions worker.
    assert get_redis().rpop("bf:drain:actions") == session.pk.encode()
    assert action.status == ActionStatus.QUEUED


def _refused_outside_pipelines(real: Any) -> Any:
    """No command of the accept's Redis traffic is sent on its own (the pipeline's are not here)."""

    def execute_command(self: Redis, *args: Any, **options: Any) -> Any:
        raise AssertionError(f"a round trip of its own: {args[0]}")

    return execute_command
