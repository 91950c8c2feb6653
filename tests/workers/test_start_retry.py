"""Slow down, don't fail: a browser start that fails (a saturated host) is tried again while
its create still waits (issue 20 item 4)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts.services import account_create
from sessions.models import BrowserSession, SessionStatus
from tests.support.processes import browser_processes, wait_until
from workers import services
from workers.browser import BrowserStartError, get_backend


class _SaturatedOnce:
    """The real local backend, whose first start fails as on a CPU-saturated host."""

    def __init__(self, *, failures: int, before_retry: Any = None) -> None:
        self.real = get_backend()
        self.failures = failures
        self.before_retry = before_retry
        self.starts = 0

    def start(self, **kwargs: Any) -> Any:
        self.starts += 1
        if self.starts <= self.failures:
            if self.before_retry is not None:
                self.before_retry()
            raise BrowserStartError("Chromium did not start: POST http://127.0.0.1:1/session: timed out")
        return self.real.start(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


# Real browser starts: they need the egress filter (the stack tier).
pytestmark = pytest.mark.usefixtures("egress_filter")


@pytest.fixture
def starting(plans):
    account = account_create(name="retry", plan_name="enterprise")[0]
    now = timezone.now()
    return BrowserSession.objects.create(
        account=account, status=SessionStatus.STARTING, created_at=now, last_activity_at=now,
        expires_at=now + timedelta(seconds=600), max_lifetime_seconds=600, inactivity_timeout_seconds=120,
    )  # fmt: skip


def test_a_start_that_timed_out_is_tried_again_and_the_session_becomes_ready(starting, monkeypatch, settings):
    settings.BROWSER_START_ATTEMPTS = 2
    settings.BROWSER_START_TIMEOUT_SECONDS = 120  # the real start: this machine may be busy
    backend = _SaturatedOnce(failures=1)
    monkeypatch.setattr(services, "get_backend", lambda *a, **k: backend)
    services.session_browser_start(session_id=starting.pk)
    row = BrowserSession.objects.get(pk=starting.pk)
    try:
        assert backend.starts == 2
        assert row.status == SessionStatus.READY, (row.status, row.ended_reason, row.error)
    finally:
        row.status = SessionStatus.TERMINATED
        row.save(update_fields=["status"])
        services.session_browser_stop(session_id=starting.pk)
    wait_until(lambda: not browser_processes(row.profile_dir), timeout=20, message="the browser gone")


def test_no_attempt_is_made_for_a_create_that_gave_up(starting, monkeypatch, settings):
    settings.BROWSER_START_ATTEMPTS = 3

    def create_gives_up() -> None:
        BrowserSession.objects.filter(pk=starting.pk).update(
            status=SessionStatus.TERMINATED, ended_reason="start_failed"
        )

    backend = _SaturatedOnce(failures=1, before_retry=create_gives_up)
    monkeypatch.setattr(services, "get_backend", lambda *a, **k: backend)
    services.session_browser_start(session_id=starting.pk)
    assert backend.starts == 1
    services.session_browser_stop(session_id=starting.pk)  # nothing started: released at once


def test_attempts_are_bounded(starting, monkeypatch, settings):
    settings.BROWSER_START_ATTEMPTS = 2
    backend = _SaturatedOnce(failures=5)
    monkeypatch.setattr(services, "get_backend", lambda *a, **k: backend)
    services.session_browser_start(session_id=starting.pk)
    row = BrowserSession.objects.get(pk=starting.pk)
    assert backend.starts == 2
    assert row.status == SessionStatus.TERMINATED and row.ended_reason == "start_failed"
    services.session_browser_stop(session_id=starting.pk)


def test_a_flavour_whose_binary_this_host_lacks_fails_the_start_with_a_clear_error(
    starting, settings, tmp_path
):
    """The create then answers 503 browser_start_failed (sessions.services.session_start_waited),
    which names no path; the operator reads the reason on the row (the admin) and in the log."""
    missing = str(tmp_path / "no-headless-shell")
    settings.CHROMIUM_HEADLESS_SHELL_BINARY = missing
    BrowserSession.objects.filter(pk=starting.pk).update(browser="headless_shell")
    services.session_browser_start(session_id=starting.pk)
    row = BrowserSession.objects.get(pk=starting.pk)
    assert (row.status, row.ended_reason) == (SessionStatus.TERMINATED, "start_failed")
    assert row.error == (
        f"this host has no headless_shell browser: CHROMIUM_HEADLESS_SHELL_BINARY ({missing}) is not an "
        "executable file"
    )
    assert not browser_processes(f"/{starting.pk}")
