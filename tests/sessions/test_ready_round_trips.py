"""The ready mark of a started browser (a warm claim's adopt, a cold start) wakes the waiting
create: the session's `ready` event and the create's signal go to Redis in one round trip, the
event first (the warm create, issue 20; docs/benchmarks.md "Wave 4 session 4")."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.client import Pipeline

from accounts.services import account_create
from project.redis import get_redis
from sessions.browser_state import session_browser_ready
from sessions.events import events_key
from sessions.location import BrowserLocation
from sessions.services import started_event
from tests.support.rows import session_row

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_ready_event_and_the_create_signal_go_in_one_round_trip(
    plans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = account_create(name="ready", plan_name="enterprise", credits=10**6)[0]
    session = session_row(account, host="h")
    sent: list[list[str]] = []
    execute = Pipeline.execute

    def spy(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        sent.append([str(command[0][0]) for command in self.command_stack])
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", spy)
    location = BrowserLocation(backend="local", webdriver_url="http://127.0.0.1:1", webdriver_session_id="w")
    assert session_browser_ready(session=session, location=location)
    assert sent == [["XADD", "EXPIRE", "RPUSH", "EXPIRE"]]
    entries = get_redis().xrange(events_key(session.pk))
    assert [json.loads(fields[b"data"])["status"] for _, fields in entries] == ["ready"]
    signal = get_redis().lpop(f"bf:done:{started_event(session.pk)}")
    assert signal is not None and json.loads(signal) == {"ok": True}
