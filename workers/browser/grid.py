"""The grid backend: browsers live on Selenium Grid 4 nodes; any worker anywhere attaches."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from sessions.location import CHROMIUM, BrowserLocation
from workers.browser import egress
from workers.browser.base import Display, prepare_first_tab, webdriver_request, webdriver_session_alive
from workers.browser.errors import BrowserError, BrowserStartError
from workers.browser.options import chrome_capabilities


class GridBackend:
    name = "grid"

    def __init__(self, url: str | None = None) -> None:
        self.url = (url or settings.SELENIUM_GRID_URL).rstrip("/")

    def start(
        self,
        *,
        session_id: str,
        display: Display,
        routes: dict[str, Any] | None = None,
        flavour: str = CHROMIUM,
    ) -> BrowserLocation:
        if flavour != CHROMIUM:
            # The nodes run their own browser (full Chromium); a create or a job that asks for the
            # shell on this backend is refused before it gets here (docs/operations.md).
            raise BrowserStartError(f"the Grid backend runs full Chromium only, not {flavour}")
        if routes is not None:
            # The filter cannot tell one node's session from another's by uid: never go direct.
            raise BrowserStartError("upstream proxies are not available on the Grid backend")
        # Checked from here: the nodes must reach the filter at the same BROWSER_EGRESS_HOST.
        egress.ensure_ready()
        # The node knows where its browser binary is; profiles are the node's own temp dirs.
        # No --no-sandbox from us: whether Chrome's sandbox can run is the node's to decide
        # (docs/egress.md, "Layers on Docker Compose").
        capabilities = chrome_capabilities(display=display, binary=None, profile_dir=None, sandbox=True)
        try:
            reply = webdriver_request(
                "POST",
                f"{self.url}/session",
                body={"capabilities": {"alwaysMatch": capabilities}},
                timeout=settings.BROWSER_START_TIMEOUT_SECONDS,
            )
            webdriver_session_id = str(reply["value"]["sessionId"])
        except (BrowserError, KeyError, TypeError) as exc:
            raise BrowserStartError(f"Selenium Grid could not start a browser: {exc}") from exc
        handle = BrowserLocation(
            backend=self.name, webdriver_url=self.url, webdriver_session_id=webdriver_session_id
        )
        try:
            prepare_first_tab(self.url, webdriver_session_id, display)
        except BrowserError as exc:
            self.stop(handle, session_id=session_id)
            raise BrowserStartError(f"Could not size the browser: {exc}") from exc
        return handle

    def stop(self, handle: BrowserLocation, *, session_id: str) -> None:
        with contextlib.suppress(BrowserError):
            webdriver_request(
                "DELETE", f"{handle.webdriver_url}/session/{handle.webdriver_session_id}", timeout=10
            )

    def is_alive(self, handle: BrowserLocation) -> bool:
        return webdriver_session_alive(handle)

    def grid_sessions(self) -> dict[str, datetime | None]:
        """WebDriver session ids on the Grid, with the time each started when the Grid says."""
        status = webdriver_request("GET", f"{self.url}/status", timeout=5)
        sessions: dict[str, datetime | None] = {}
        for node in status.get("value", {}).get("nodes", []):
            for slot in node.get("slots", []):
                session = slot.get("session") or {}
                if session.get("sessionId"):
                    started = None
                    with contextlib.suppress(TypeError, ValueError):
                        started = datetime.fromisoformat(str(session.get("start")).replace("Z", "+00:00"))
                    sessions[str(session["sessionId"])] = started
        return sessions

    def kill_orphans(self, *, live_session_ids: set[str], live_webdriver_ids: set[str]) -> list[str]:
        """Delete Grid sessions that no live row owns. Assumes the Grid is ours alone.

        A browser that a worker is starting right now has no row pointing at it yet, so only
        sessions older than BROWSER_ORPHAN_GRACE_SECONDS (above the longest start) are candidates.
        """
        young = datetime.now(UTC) - timedelta(seconds=settings.BROWSER_ORPHAN_GRACE_SECONDS)
        killed = []
        for webdriver_id, started in self.grid_sessions().items():
            if webdriver_id in live_webdriver_ids or (started is not None and started > young):
                continue
            with contextlib.suppress(BrowserError):
                webdriver_request("DELETE", f"{self.url}/session/{webdriver_id}", timeout=10)
            killed.append(webdriver_id)
        return killed
