"""A job page's error text never names the driver's address or the WebDriver session (issue 19,
item 10): what a tenant reads in results and webhooks goes through tenant_error_text, and
failures of our own browsers read as what happened, not as our exception text.

The browser here is a stand-in that fails the way a real one does (the messages are copied from a
jobs worker's log on a loaded machine); the code under test is the runner's error handling.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobs.models import JobItem
from sessions.location import BrowserLocation
from workers import job_runner
from workers.browser import BrowserError, BrowserGone, BrowserStartError

DRIVER = "http://127.0.0.1:55321"
SESSION = "4f2c9d0e8b7a6c5d4e3f2a1b0c9d8e7f"


class _FailingBrowser:
    def __init__(self, error: Exception) -> None:
        self.id = "job-test"
        self.error = error
        self.start_failed = False
        self.routes = None  # no upstream proxy
        self.handle = BrowserLocation(
            backend="local",
            webdriver_url=DRIVER,
            webdriver_session_id=SESSION,
            host="vm",
            browser_pid=None,
            profile_dir="",
        )

    def ready(self) -> Any:
        raise self.error

    def restart(self) -> None:
        pass


@pytest.mark.parametrize(
    "error",
    [
        BrowserStartError(f"Chromium did not start: POST {DRIVER}/session: timed out"),
        BrowserGone(
            "The job browser's driver does not answer: HTTPConnectionPool(host='127.0.0.1', port=55321): "
            f"Max retries exceeded with url: /session/{SESSION}/url"
        ),
        BrowserError(f"Unable to execute request for session {SESSION} on node {DRIVER}"),
    ],
)
def test_job_page_errors_do_not_name_the_driver_or_the_session(error):
    visit = job_runner._visit(_FailingBrowser(error), JobItem(url="http://127.0.0.1:9/"), {})  # type: ignore[arg-type]
    assert not visit.ok and visit.error_code
    for secret in ("55321", SESSION, "HTTPConnectionPool", "127.0.0.1"):
        assert secret not in visit.error_message, visit.error_message
