"""WebDriver and connection errors as our own: ActionFailed (the page), BrowserGone, transient."""

from __future__ import annotations

from typing import Any

import urllib3
from selenium.common.exceptions import (
    InvalidSessionIdException,
    MoveTargetOutOfBoundsException,
    NoSuchWindowException,
    TimeoutException,
    WebDriverException,
)

from sessions.location import BrowserLocation
from workers.browser.base import webdriver_session_alive
from workers.browser.driver import COMMAND_TIMEOUT, forget
from workers.browser.errors import BrowserError, BrowserGone, TransientBrowserError
from workers.browser.executor.run import ActionFailed

# chromedriver and Grid messages that mean the browser or the session is gone for good.
_GONE_MARKERS = (
    "invalid session id",
    "no such session",
    "unable to find session",
    "session deleted",
    "chrome not reachable",
    "not connected to devtools",
    "cannot connect to chrome",
    "browser has closed the connection",
)


def message(exc: WebDriverException) -> str:
    text = (exc.msg or str(exc) or type(exc).__name__).strip()
    # The first line, without Selenium's link to its troubleshooting pages.
    first = text.split("\n", 1)[0].split("; For documentation on this error", 1)[0].strip()
    return first.removeprefix("unknown error: ")[:500]


def from_webdriver(exc: WebDriverException, handle: BrowserLocation) -> BrowserError:
    text = message(exc)
    lowered = text.lower()
    if isinstance(exc, InvalidSessionIdException) or any(marker in lowered for marker in _GONE_MARKERS):
        forget(handle)
        return BrowserGone(f"The browser is gone: {text}")
    if isinstance(exc, MoveTargetOutOfBoundsException):
        return ActionFailed(f"The point is outside the viewport: {text}")
    if isinstance(exc, NoSuchWindowException):
        return ActionFailed(f"The tab was closed: {text}")
    if isinstance(exc, TimeoutException):
        return ActionFailed(f"Timed out: {text}")
    # Navigation errors (net::ERR_*), element and script errors: the page's problem.
    return ActionFailed(text)


def from_connection(exc: urllib3.exceptions.HTTPError, handle: BrowserLocation) -> BrowserError:
    # Whatever went wrong, the pooled connections are suspect: the next action attaches afresh.
    forget(handle)
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        # The driver is there but busy (a hung renderer): the action failed, the session lives.
        return ActionFailed(f"The browser did not answer within {COMMAND_TIMEOUT.read_timeout:.0f} s")
    if not webdriver_session_alive(handle):
        return BrowserGone(f"The browser's driver is unreachable: {reason}")
    return TransientBrowserError(f"The connection to the browser's driver dropped: {reason}")


def page_error(reply: Any) -> None:
    """Scripts report page-side problems as {"error": kind, "message": ...}."""
    if isinstance(reply, dict) and reply.get("error"):
        raise ActionFailed(str(reply.get("message") or reply["error"]))
