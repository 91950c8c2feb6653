"""The browser backend interface: where browsers are started, how to reach and stop them."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

from sessions.location import CHROMIUM, BrowserLocation
from workers.browser.errors import BrowserError, BrowserGone


@dataclass(frozen=True)
class Display:
    width: int = 1024
    height: int = 768
    scale: float = 1.0


class BrowserBackend(Protocol):
    name: str

    def start(
        self,
        *,
        session_id: str,
        display: Display,
        routes: dict[str, Any] | None = None,
        flavour: str = CHROMIUM,
    ) -> BrowserLocation:
        """Start a browser of `flavour` (sessions/location.py: chromium or headless_shell)."""

    def stop(self, handle: BrowserLocation, *, session_id: str) -> None:
        """End the browser and free everything it held. Safe to call twice."""

    def is_alive(self, handle: BrowserLocation) -> bool: ...

    def kill_orphans(self, *, live_session_ids: set[str], live_webdriver_ids: set[str]) -> list[str]:
        """Kill browsers that belong to no live session; return what was killed."""


def webdriver_request(
    method: str, url: str, *, body: dict[str, Any] | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """One raw W3C WebDriver HTTP call (used where a full Selenium client is not needed)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json; charset=utf-8")
    grid = settings.SELENIUM_GRID_URL
    if grid and settings.SELENIUM_GRID_USERNAME and (url == grid or url.startswith(f"{grid}/")):
        # The hub asks for basic auth (docker-compose.yml); only the hub ever gets the password.
        pair = f"{settings.SELENIUM_GRID_USERNAME}:{settings.SELENIUM_GRID_PASSWORD}".encode()
        request.add_header("Authorization", f"Basic {base64.b64encode(pair).decode()}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as exc:
        try:
            payload = json.load(exc)
        except ValueError:
            payload = {}
        value = payload.get("value") or {}
        error = value.get("error", "") if isinstance(value, dict) else ""
        message = str(value.get("message", "")).split("\n", 1)[0][:300] if isinstance(value, dict) else ""
        detail = f"{method} {url}: {error or exc.code}" + (f": {message}" if message else "")
        # "no such window" is not listed: a page may close its own tab and the session lives on.
        if error == "invalid session id" or (exc.code == 404 and not error):
            raise BrowserGone(detail) from exc
        raise BrowserError(detail) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError):
            # A slow answer is a busy driver, not a dead one.
            raise BrowserError(f"{method} {url}: timed out") from exc
        raise BrowserGone(f"{method} {url}: {reason}") from exc


def webdriver_session_alive(handle: BrowserLocation) -> bool:
    try:
        webdriver_request(
            "GET", f"{handle.webdriver_url}/session/{handle.webdriver_session_id}/window", timeout=5
        )
    except BrowserGone:
        return False
    except BrowserError:
        # The driver answered with some other error: it is there, the page may be busy.
        return True
    return True


def cdp_execute(
    webdriver_url: str, webdriver_session_id: str, cmd: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One Chrome DevTools command on the session's current tab, through the driver's endpoint."""
    return webdriver_request(
        "POST",
        f"{webdriver_url}/session/{webdriver_session_id}/goog/cdp/execute",
        body={"cmd": cmd, "params": params or {}},
        timeout=10,
    )


# What every tab the executor works in gets besides the display (run.ensure_display sends them to
# tabs that pages open). File choosers are intercepted and nobody answers them, so a page that
# opens one gets no file; Element Send Keys, the other way a host file reaches a page, is never
# used on tenant pages (executor/step.py).
TAB_SETUP_COMMANDS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Page.setInterceptFileChooserDialog", {"enabled": True}),
)


def display_metrics(display: Display) -> dict[str, Any]:
    return {
        "width": display.width,
        "height": display.height,
        "deviceScaleFactor": display.scale,
        "mobile": False,
    }


def prepare_first_tab(webdriver_url: str, webdriver_session_id: str, display: Display) -> None:
    """Make the page viewport exactly the display, in CSS pixels, at the display's scale, and
    send the tab setup commands.

    Headless Chromium's window size includes space that is not page, so --window-size alone
    gives a shorter viewport. Emulation sets it per tab, as Puppeteer's defaultViewport does.
    """
    cdp_execute(
        webdriver_url, webdriver_session_id, "Emulation.setDeviceMetricsOverride", display_metrics(display)
    )
    for cmd, params in TAB_SETUP_COMMANDS:
        cdp_execute(webdriver_url, webdriver_session_id, cmd, params)
