"""A small Chrome DevTools protocol client over the browser's own WebSocket.

WebDriver's `goog/cdp/execute` sends one command to the current tab and returns no events. The
saved-state export and import need events (a request paused by the Fetch domain, a page loaded)
and browser-wide commands on tabs of their own, so they talk to the browser's DevTools endpoint:
the local browser's `DevToolsActivePort` (on its host), or a Grid's `se/cdp` route, which the
Grid forwards to the node's browser. Sessions are flattened: one socket, `sessionId` per tab.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
from pathlib import Path
from typing import Any

import websocket

from sessions.location import BrowserLocation
from workers.browser.errors import BrowserError, BrowserGone


def devtools_url(handle: BrowserLocation) -> str:
    """The browser-wide DevTools WebSocket URL of the session's browser."""
    if handle.backend == "grid":
        parts = urllib.parse.urlsplit(handle.webdriver_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return (
            f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/session/{handle.webdriver_session_id}/se/cdp"
        )
    # chromedriver starts Chromium with --remote-debugging-port=0; Chromium writes the port and
    # the browser target's path here (only on the browser's host).
    active = Path(handle.profile_dir) / "profile" / "DevToolsActivePort"
    try:
        port, path = active.read_text().split()[:2]
    except (OSError, ValueError) as exc:
        raise BrowserGone(f"no DevTools endpoint for the browser: {exc}") from exc
    return f"ws://127.0.0.1:{int(port)}{path}"


class DevTools:
    """One DevTools connection; use as a context manager. Every wait is bounded by `deadline`."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        self._replies: dict[int, dict[str, Any]] = {}
        # Scratch tabs whose other requests (anything but the one page we serve) are refused.
        self.blocking: set[str] = set()
        # A scratch tab's one answer to a request of its page, per session: (URL, Fetch response).
        self.serving: dict[str, tuple[str, dict[str, Any]]] = {}
        try:
            self._ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        except (OSError, websocket.WebSocketException) as exc:
            raise BrowserGone(f"DevTools connection failed: {type(exc).__name__}") from exc

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, *_: object) -> None:
        self._ws.close()

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            self._ws.send(json.dumps(message))
        except (OSError, websocket.WebSocketException) as exc:
            raise BrowserGone(f"DevTools connection lost: {type(exc).__name__}") from exc
        return message_id

    def _receive(self) -> dict[str, Any]:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError("DevTools: timed out")
        self._ws.settimeout(remaining)
        try:
            message: dict[str, Any] = json.loads(self._ws.recv())
        except websocket.WebSocketTimeoutException as exc:
            raise BrowserError("DevTools: timed out") from exc
        except (OSError, ValueError, websocket.WebSocketException) as exc:
            raise BrowserGone(f"DevTools connection lost: {type(exc).__name__}") from exc
        if message.get("method") == "Fetch.requestPaused" and message.get("sessionId") in self.blocking:
            session, params = message["sessionId"], message["params"]
            serving = self.serving.get(session)
            if serving is not None and params.get("request", {}).get("url") == serving[0]:
                del self.serving[session]
                self.send("Fetch.fulfillRequest", {"requestId": params["requestId"], **serving[1]}, session)
            else:
                self.send(
                    "Fetch.failRequest",
                    {"requestId": params["requestId"], "errorReason": "BlockedByClient"},
                    session,
                )
            return {}
        return message

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        return self.reply(self.send(method, params, session), method)

    def reply(self, message_id: int, method: str) -> dict[str, Any]:
        """The result of a command sent earlier with `send` (commands may be pipelined: several
        sent, then their replies collected, saves a round trip each)."""
        while message_id not in self._replies:
            message = self._receive()
            if "id" in message:
                self._replies[int(message["id"])] = message
            elif "method" in message:
                self._events.append(message)
        message = self._replies.pop(message_id)
        if "error" in message:
            error = message["error"]
            raise BrowserError(f"{method}: {error.get('message', error)}"[:300])
        return dict(message.get("result") or {})

    def call_all(self, commands: list[tuple[str, dict[str, Any], str | None]]) -> list[dict[str, Any]]:
        """Send every command at once, then collect the replies in order (the first error raises)."""
        sent = [(self.send(method, params, session), method) for method, params, session in commands]
        return [self.reply(message_id, method) for message_id, method in sent]

    def drop_events(self, session: str | None) -> None:
        self._events = [e for e in self._events if e.get("sessionId") != session]

    def wait_event(self, method: str, session: str | None = None) -> dict[str, Any]:
        while True:
            for event in self._events:
                if event.get("method") == method and event.get("sessionId") == session:
                    self._events.remove(event)
                    return dict(event.get("params") or {})
            message = self._receive()
            if "id" in message:
                self._replies[int(message["id"])] = message
            elif "method" in message:
                self._events.append(message)

    def evaluate(self, expression: str, session: str, *, context_id: int | None = None) -> Any:
        """The value of an expression (awaited if a promise) in a tab; a page exception is an error."""
        params: dict[str, Any] = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        if context_id is not None:
            params["contextId"] = context_id
        result = self.call("Runtime.evaluate", params, session)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text", "")
            raise BrowserError(f"script failed: {str(text).splitlines()[0][:200] if text else 'error'}")
        return (result.get("result") or {}).get("value")
