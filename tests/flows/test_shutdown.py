"""A clean stop (issue 20 item 6): `bin/dev serve` stopped runs manage.py host_shutdown, which
ends the host's live sessions (`shutdown`) and leaves no browser running."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.services import account_create
from sessions.models import BrowserSession, SessionStatus
from tests.support.processes import browser_processes, wait_until
from workers import services


@pytest.fixture
def live_sessions(plans, settings):
    """Two sessions whose browsers this host started (in this process, with a start timeout
    that a busy test machine cannot miss)."""
    settings.BROWSER_START_TIMEOUT_SECONDS = 120
    settings.BROWSER_START_ATTEMPTS = 4  # its first-tab DevTools calls have their own 10 s
    account = account_create(name="shutdown", plan_name="enterprise")[0]
    rows = []
    for _ in range(2):
        now = timezone.now()
        row = BrowserSession.objects.create(
            account=account, status=SessionStatus.STARTING, created_at=now, last_activity_at=now,
            expires_at=now + timedelta(seconds=600), max_lifetime_seconds=600, inactivity_timeout_seconds=600,
        )  # fmt: skip
        services.session_browser_start(session_id=row.pk)
        row.refresh_from_db()
        assert row.status == SessionStatus.READY, (row.status, row.error)
        rows.append(row)
    return rows


def test_host_shutdown_ends_live_sessions_and_stops_their_browsers(live_sessions, client):
    for row in live_sessions:
        assert browser_processes(row.profile_dir), "its browser runs"
    out = StringIO()
    call_command("host_shutdown", host=live_sessions[0].host, stdout=out)
    assert "2 sessions ended (shutdown)" in out.getvalue()
    for row in live_sessions:
        row.refresh_from_db()
        assert row.status == "terminated" and row.ended_reason == "shutdown"
        assert row.ended_at is not None and row.browser_released_at is not None
        wait_until(lambda r=row: not browser_processes(r.profile_dir), timeout=20, message="browser gone")


def test_a_second_run_finds_nothing_to_end(plans):
    out = StringIO()
    call_command("host_shutdown", stdout=out)
    assert "0 sessions ended" in out.getvalue()
