"""Per-host browser start slots (issue 20 item 4): a host runs at most BROWSER_STARTS_PER_HOST
local starts at once; a start beyond waits for a slot while its create waits, and no longer."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from accounts.services import account_create
from project.redis import get_redis
from sessions.location import BrowserLocation
from sessions.models import BrowserSession, EndedReason, SessionStatus
from workers import services, start_slots
from workers.browser import Display
from workers.browser.local import LocalBackend


@pytest.fixture
def host(settings: Any) -> str:
    """A host name of this test's own (its slots are a Redis key of its own)."""
    settings.WORKER_HOST = f"slots-{uuid.uuid4().hex[:8]}"
    settings.BROWSER_STARTS_PER_HOST = 2
    return str(settings.WORKER_HOST)


def test_a_host_runs_no_more_starts_at_once_than_its_slots(host: str) -> None:
    running: list[int] = []
    most = 0
    took: list[bool] = []
    lock = threading.Lock()

    def start() -> None:
        nonlocal most
        with start_slots.start_slot(host=host, wait_seconds=30) as held:
            took.append(held)
            with lock:
                running.append(1)
                most = max(most, len(running))
            time.sleep(0.2)  # a start's work: long enough for the five to overlap without slots
            with lock:
                running.pop()

    threads = [threading.Thread(target=start) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert took == [True] * 5  # every start got its turn
    assert most == 2
    assert start_slots.start_slots_held(host=host) == 0  # all given back


def test_the_slot_of_a_process_that_died_comes_back_after_its_lease(host: str) -> None:
    key = f"bf:start-slots:{host}"
    # Two slots taken by starts whose processes died: one lease ended, one still running.
    get_redis().zadd(key, {"dead-ended": time.time() - 1, "dead-running": time.time() + 60})
    token = start_slots.start_slot_take(host=host)
    assert token is not None
    assert start_slots.start_slot_take(host=host) is None  # the running lease still counts
    start_slots.start_slot_release(host=host, token=token)


def _fill(host: str) -> list[str]:
    tokens = [start_slots.start_slot_take(host=host) for _ in range(2)]
    assert all(tokens)
    return [t for t in tokens if t]


class _RecordingBackend(LocalBackend):
    """The local backend as services see it, whose start only records that it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.starts = 0

    def start(
        self,
        *,
        session_id: str,
        display: Display,
        routes: dict[str, Any] | None = None,
        flavour: str = "chromium",
    ) -> BrowserLocation:
        self.starts += 1
        return BrowserLocation(
            backend="local", webdriver_url="http://127.0.0.1:1", webdriver_session_id="x", host=self.host
        )


@pytest.fixture
def backend(host: str, monkeypatch: pytest.MonkeyPatch) -> _RecordingBackend:
    """What session starts on `host` use, in place of the real local backend."""
    recording = _RecordingBackend()
    monkeypatch.setattr(services, "get_backend", lambda *a, **k: recording)
    return recording


def _starting_session() -> BrowserSession:
    account = account_create(name=f"slots-{uuid.uuid4().hex[:6]}", plan_name="enterprise")[0]
    now = timezone.now()
    return BrowserSession.objects.create(
        account=account, status=SessionStatus.STARTING, created_at=now, last_activity_at=now,
        expires_at=now + timedelta(seconds=600), max_lifetime_seconds=600, inactivity_timeout_seconds=120,
    )  # fmt: skip


def test_a_start_with_no_slot_within_its_create_wait_ends_as_start_failed(
    host: str, backend: _RecordingBackend, plans: Any, settings: Any
) -> None:
    settings.SESSION_CREATE_WAIT_SECONDS = 1
    session = _starting_session()
    held = _fill(host)
    services.session_browser_start(session_id=session.pk)
    session.refresh_from_db()
    assert backend.starts == 0
    assert (session.status, session.ended_reason) == (SessionStatus.TERMINATED, EndedReason.START_FAILED)
    # And with a slot free, a start runs.
    start_slots.start_slot_release(host=host, token=held[0])
    second = _starting_session()
    services.session_browser_start(session_id=second.pk)
    assert backend.starts == 1
    second.refresh_from_db()
    assert second.status == SessionStatus.READY


@pytest.mark.django_db(transaction=True)
def test_a_start_waiting_for_a_slot_stops_waiting_when_its_create_gives_up(
    host: str, backend: _RecordingBackend, plans: Any, settings: Any
) -> None:
    settings.SESSION_CREATE_WAIT_SECONDS = 60
    session = _starting_session()
    _fill(host)

    def create_gives_up() -> None:
        BrowserSession.objects.filter(pk=session.pk).update(
            status=SessionStatus.TERMINATED, ended_reason=EndedReason.START_FAILED
        )
        connection.close()

    timer = threading.Timer(0.5, create_gives_up)
    timer.start()
    began = time.monotonic()
    services.session_browser_start(session_id=session.pk)
    timer.join()
    assert time.monotonic() - began < 30  # it stopped waiting (its wait was 60 s)
    assert backend.starts == 0
