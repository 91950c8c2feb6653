"""A drain looks for a lost restore's mark once per session and process, not on every action."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import account_create
from project.memo import BoundedMemo
from project.redis import get_redis
from sessions.models import BrowserSession
from workers import action_runner
from workers.action_runner import _restore_interrupted, restoring_key


@pytest.fixture
def session(plans):
    account = account_create(name="restore-check", plan_name="enterprise")[0]
    now = timezone.now()
    row = BrowserSession.objects.create(
        account=account, status="running", created_at=now, last_activity_at=now,
        expires_at=now + timedelta(seconds=600), max_lifetime_seconds=600, inactivity_timeout_seconds=120,
    )  # fmt: skip
    yield row
    get_redis().delete(restoring_key(row.pk))
    action_runner._restore_checked.forget(row.pk)


class _CountingExists:
    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        redis = get_redis()
        real = redis.exists

        def exists(*names):
            self.calls.extend(names)
            return real(*names)

        monkeypatch.setattr(redis, "exists", exists)


def test_the_mark_is_looked_for_once_while_absent(session, monkeypatch):
    counted = _CountingExists(monkeypatch)
    assert _restore_interrupted(session.pk) is False
    assert _restore_interrupted(session.pk) is False
    assert _restore_interrupted(session.pk) is False
    assert counted.calls == [restoring_key(session.pk)]


def test_a_present_mark_ends_the_session_and_is_not_remembered_as_absent(session, monkeypatch):
    get_redis().set(restoring_key(session.pk), "1")
    counted = _CountingExists(monkeypatch)
    assert _restore_interrupted(session.pk) is True
    session.refresh_from_db()
    assert session.status == "terminated" and session.ended_reason == "crashed"
    assert get_redis().get(restoring_key(session.pk)) is None
    assert session.pk not in action_runner._restore_checked
    # The next drain looks again (the mark is gone now) and only then remembers it absent.
    assert _restore_interrupted(session.pk) is False
    assert counted.calls == [restoring_key(session.pk)] * 2


def test_a_redis_error_is_not_remembered(session, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    def down(*names):
        raise RedisConnectionError("down")

    monkeypatch.setattr(get_redis(), "exists", down)
    assert _restore_interrupted(session.pk) is False
    assert session.pk not in action_runner._restore_checked


def test_the_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(action_runner, "_restore_checked", BoundedMemo(3))
    for n in range(5):
        action_runner._restore_checked.put(f"comp_{n}", True)
    assert list(action_runner._restore_checked) == ["comp_2", "comp_3", "comp_4"]
