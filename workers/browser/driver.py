"""Selenium attached to a WebDriver session that someone else started.

A session's browser is started once (by LocalBackend or GridBackend) and then driven by whichever
worker process takes its actions, so the driver here never creates a session: it reuses an id.
Drivers are cached per process by (WebDriver URL, session id). The cache only saves building a
client and its connection pool; everything that matters (the current window, pressed keys and
buttons) lives in the WebDriver session itself, so a driver dropped from the cache and attached
again sees exactly the same browser.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import urllib3
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.remote.client_config import ClientConfig
from selenium.webdriver.remote.file_detector import UselessFileDetector
from selenium.webdriver.remote.remote_connection import RemoteConnection

from sessions.location import BrowserLocation
from workers.browser import egress
from workers.browser.base import Display

# Page loads and scripts time out inside the browser first (25 s and 20 s, see options.py); this
# read timeout only catches a driver that stopped answering at all. It stays well inside the
# SDK's 60 s read timeout. Connecting to a live driver takes milliseconds, even to a Grid.
COMMAND_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)

# One retry for a connection that could not be opened (a Grid router restarting, a pooled socket
# the driver closed). Never retry a request that may have reached the driver: a click sent twice
# is two clicks.
COMMAND_RETRIES = urllib3.Retry(total=1, connect=1, read=0, status=0, other=0, redirect=False)

_CDP_COMMAND = "executeCdpCommand"
# chromedriver and Selenium Grid both forward this vendor endpoint to the page's DevTools session.
_CDP_PATH = "/session/$sessionId/goog/cdp/execute"


class EgressRefused(WebDriverException):
    """The egress filter refused a navigation. Raised as a WebDriver error so that the executor
    reports it like any failed load (and a new tab is closed); `error_code` rides along the
    cause chain to the action's `code` (workers.browser.egress.error_code)."""

    def __init__(self, url: str, code: str, detail: str) -> None:
        super().__init__(f"Could not load {url}: {code}: {detail}".strip().rstrip(":"))
        self.error_code = code


class AttachedDriver(webdriver.Remote):
    """A `webdriver.Remote` for an existing session: `start_session` adopts the id, sends nothing."""

    def __init__(self, *, webdriver_url: str, webdriver_session_id: str) -> None:
        self._attach_to = webdriver_session_id
        # The display emulation this process last applied to each tab (Emulation is per tab).
        # Only saves re-applying it: another process may have applied it already, and applying
        # the same metrics twice is harmless.
        self.tab_displays: dict[str, Display] = {}
        self.commands_done = 0
        super().__init__(
            command_executor=_connection(webdriver_url),
            # Remote insists on options; they are unused because no session is created.
            options=webdriver.ChromeOptions(),
            # Selenium's default uploads any worker file whose path is "typed" into an element to
            # a remote browser. Text from users must stay text.
            file_detector=UselessFileDetector(),
        )

    def execute(self, driver_command: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = super().execute(driver_command, params)
        # Commands that reached the page and succeeded: tells whether a failure came first.
        self.commands_done += 1
        return dict(response)

    def get(self, url: str) -> None:
        """Navigate; a page that the egress filter refused is an error, not a loaded page."""
        super().get(url)
        refused = egress.refusal(self)
        if refused is not None:
            raise EgressRefused(url, refused["code"], refused["detail"])

    def start_session(self, capabilities: dict[str, Any]) -> None:
        self.session_id = self._attach_to
        self.caps = {}

    def cdp(self, cmd: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One Chrome DevTools command on the current window's page.

        Selenium's own `execute_cdp_cmd` reads `caps["browserName"]`, which an attached session
        does not have.
        """
        value = self.execute(_CDP_COMMAND, {"cmd": cmd, "params": params or {}})["value"]
        return dict(value or {})


def _connection(webdriver_url: str) -> RemoteConnection:
    config = ClientConfig(
        remote_server_addr=webdriver_url.rstrip("/"),
        keep_alive=True,
        # Selenium passes this to urllib3 as is; a Timeout object splits connect from read.
        timeout=COMMAND_TIMEOUT,  # type: ignore[arg-type]
        # Selenium reads pool manager arguments from this nested key.
        init_args_for_pool_manager={"init_args_for_pool_manager": {"retries": COMMAND_RETRIES}},
    )
    connection = RemoteConnection(client_config=config)
    # The command table is shared by every RemoteConnection; the entry is the same for all.
    connection.add_command(_CDP_COMMAND, "POST", _CDP_PATH)  # type: ignore[no-untyped-call]
    return connection


# Sessions often end in another process, which cannot forget() this one's driver; the bound
# keeps their idle connection pools from piling up. Re-attaching costs well under a millisecond.
MAX_CACHED_DRIVERS = 32

_drivers: OrderedDict[tuple[str, str], AttachedDriver] = OrderedDict()
_lock = threading.Lock()


def attach(handle: BrowserLocation) -> AttachedDriver:
    """The cached driver for this session, or a new one. Sends no WebDriver command."""
    key = (handle.webdriver_url, handle.webdriver_session_id)
    evicted = []
    with _lock:
        driver = _drivers.get(key)
        if driver is not None:
            _drivers.move_to_end(key)
            return driver
        driver = AttachedDriver(
            webdriver_url=handle.webdriver_url, webdriver_session_id=handle.webdriver_session_id
        )
        _drivers[key] = driver
        while len(_drivers) > MAX_CACHED_DRIVERS:
            evicted.append(_drivers.popitem(last=False)[1])
    for old in evicted:
        _close(old)
    return driver


def forget(handle: BrowserLocation) -> None:
    """Drop the cached driver (the session ended, or the driver looked stale). Safe to call twice.

    Only the client's connection pool is closed: the WebDriver session is not touched.
    """
    with _lock:
        driver = _drivers.pop((handle.webdriver_url, handle.webdriver_session_id), None)
    if driver is not None:
        _close(driver)


def _close(driver: AttachedDriver) -> None:
    close = getattr(driver.command_executor, "close", None)
    if close is not None:
        close()
