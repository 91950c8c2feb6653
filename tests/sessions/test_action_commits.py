"""The worker's bookkeeping of an action (claim, finish) on the hot path: its commits do not wait
for the WAL flush and leave the pooled connection as it was; its response event and the
waiter's signal go in one Redis round trip, the event first (issue 20, docs/benchmarks.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection, transaction

from accounts.services import account_create
from project.redis import get_redis
from sessions.action_queue import _accept, action_claim_next, action_event, action_finish
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
    accepted = _accept(session_id=session.pk, account=account, action={"type": "wait", "ms": 0}, api_key=None)
    assert accepted is not None
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
    accepted = _accept(session_id=session.pk, account=account, action={"type": "wait", "ms": 0}, api_key=None)
    assert accepted is not None
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
    accepted = _accept(session_id=session.pk, account=account, action={"type": "wait", "ms": 0}, api_key=None)
    assert accepted is not None
    with transaction.atomic():
        action_finish(accepted, ActionStatus.CANCELLED, error="ended")
        assert [name for name, _ in _stream(session.pk)] == ["action_request"]
    assert [name for name, _ in _stream(session.pk)] == ["action_request", "action_response"]
