"""Saved state on the Selenium Grid backend (a real Grid 4 from npm, real Chromium): a persistent
session's state is exported through the Grid's DevTools route when it ends and restored into a
new Grid session. This test process plays the worker, as tests/workers/test_grid_backend.py does."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from accounts.services import account_create
from sessions.models import BrowserSession, SavedState
from sessions.services import session_terminate
from tests.flows.test_saved_state import site  # noqa: F401  (the fixture)
from tests.support.processes import wait_until
from workers.browser.base import webdriver_request
from workers.services import session_browser_start, session_browser_stop

# Browsers start only through the egress filter (the stack tier).
pytestmark = [pytest.mark.grid, pytest.mark.usefixtures("egress_filter")]


@pytest.fixture
def grid_settings(settings, grid_url):
    settings.BROWSER_BACKEND = "grid"
    settings.SELENIUM_GRID_URL = grid_url
    return settings


def _started(account, **options) -> BrowserSession:
    now = timezone.now()
    session = BrowserSession.objects.create(
        account=account,
        created_at=now,
        last_activity_at=now,
        expires_at=now + timezone.timedelta(hours=1),
        max_lifetime_seconds=3600,
        inactivity_timeout_seconds=120,
        options=options,
    )
    session_browser_start(session_id=session.pk)
    session.refresh_from_db()
    assert session.status == "ready", session.error
    assert session.backend == "grid"
    return session


def _open(session: BrowserSession, url: str, marker: str) -> str:
    base = f"{session.webdriver_url}/session/{session.webdriver_session_id}"
    webdriver_request("POST", f"{base}/url", body={"url": url}, timeout=30)

    def html() -> str | None:
        text = webdriver_request(
            "POST", f"{base}/execute/sync", body={"script": "return document.body.innerHTML", "args": []}
        )["value"]
        return text if marker in text else None

    return str(wait_until(html, timeout=20, message=marker))


def _end(session: BrowserSession) -> None:
    session_terminate(session_id=session.pk, reason="user")
    session_browser_stop(session_id=session.pk)


def test_state_saved_and_restored_on_the_grid(plans, grid_settings, site):  # noqa: F811
    base, token = site
    account = account_create(name="grid-state", plan_name="pro")[0]
    first = _started(account, persistent=True)
    _open(first, base + "/login", "stored")
    _end(first)
    state = SavedState.objects.get(pk=first.pk)
    assert state.status == "ready" and state.origins == [base], state.failure_reason

    second = _started(account, environment_id=first.pk)
    try:
        page = _open(second, base + "/whoami", "read ")
    finally:
        _end(second)
    assert f"sid=sid-{token}" in page and f"remember=rem-{token}" in page
    out = re.search(r"read ([^<]*)", page)
    assert out and f"ls=ls-{token}" in out.group(1) and f"idb=idb-{token}@true" in out.group(1)
