"""The grid backend against a real Selenium Grid 4 (from npm) driving real Chromium.

This test process plays the worker: it calls the same worker services the Celery tasks call,
with the grid backend configured, so the whole start/attach/reconcile/stop path runs for real.
"""

from __future__ import annotations

import pytest

from accounts.services import account_create
from sessions.models import BrowserSession
from sessions.services import session_terminate
from tests.support.processes import wait_until
from tests.support.rows import session_row
from workers.browser.base import webdriver_request
from workers.browser.grid import GridBackend
from workers.services import browsers_reconcile, session_browser_start, session_browser_stop

pytestmark = pytest.mark.grid


@pytest.fixture
def grid_settings(settings, grid_url):
    settings.BROWSER_BACKEND = "grid"
    settings.SELENIUM_GRID_URL = grid_url
    settings.BROWSER_ORPHAN_GRACE_SECONDS = 0
    return settings


def _starting_session(account, **fields) -> BrowserSession:
    return session_row(account, **fields)


def test_grid_session_starts_attaches_reconciles_and_stops(live_worker, grid_settings, grid_url):
    account = account_create(name="grid", plan_name="pro")[0]
    session = _starting_session(account, display_width=800, display_height=600, display_scale=2.0)
    session_browser_start(session_id=session.pk)
    session.refresh_from_db()
    assert session.status == "ready"
    assert session.backend == "grid" and session.webdriver_url == grid_url
    base = f"{grid_url}/session/{session.webdriver_session_id}"
    viewport = webdriver_request(
        "POST",
        f"{base}/execute/sync",
        body={"script": "return [innerWidth, innerHeight, devicePixelRatio]", "args": []},
    )["value"]
    assert viewport == [800, 600, 2]

    backend = GridBackend(grid_url)
    # A Grid session that no row owns is an orphan: reconcile deletes it, and spares ours.
    orphan = webdriver_request(
        "POST",
        f"{grid_url}/session",
        body={
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"args": ["--headless=new", "--no-sandbox", "--disable-gpu"]},
                }
            }
        },
        timeout=30,
    )["value"]["sessionId"]
    assert orphan in backend.grid_sessions()
    result = browsers_reconcile()
    assert result["orphans_killed"] == 1
    wait_until(
        lambda: set(backend.grid_sessions()) == {session.webdriver_session_id},
        timeout=10,
        message="only our session left on the Grid",
    )
    assert backend.is_alive(session.location)

    session_terminate(session_id=session.pk, reason="user")
    session_browser_stop(session_id=session.pk)
    # The Grid frees the slot asynchronously after the DELETE.
    wait_until(lambda: backend.grid_sessions() == {}, timeout=10, message="the Grid slot to be free")
    assert BrowserSession.objects.get(pk=session.pk).browser_released_at is not None


def test_grid_session_whose_browser_vanished_is_reconciled_as_crashed(live_worker, grid_settings, grid_url):
    account = account_create(name="grid2", plan_name="pro")[0]
    session = _starting_session(account)
    session_browser_start(session_id=session.pk)
    session.refresh_from_db()
    webdriver_request("DELETE", f"{grid_url}/session/{session.webdriver_session_id}")
    browsers_reconcile()
    session.refresh_from_db()
    assert session.status == "terminated" and session.ended_reason == "crashed"
