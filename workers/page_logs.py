"""Page logs on the browser's host: console messages, page errors and network requests of every
live local session, collected through the browser's DevTools endpoint (docs/logs-and-recordings.md).

The host's lifecycle worker runs, in its main process (next to the heartbeat and the screencast
supervisor), one supervisor thread that lists this host's live sessions every `_POLL_SECONDS`
and keeps one collector thread per session, plus one writer thread that stores what the
collectors read in batches (sessions/page_logs.py). Nothing of this runs in the action path: an
action never waits for a log entry, and a collector that fails costs only its own logs.

A collector holds one browser-wide DevTools connection (the port and path Chromium wrote to
`DevToolsActivePort`), discovers the page targets (tabs), attaches to each (flattened sessions)
and enables Runtime, Log and Network there. It reads events only: no request is paused, no body
or header kept (URL, method, status, type, size and timing of a request; text of a message).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import websocket
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import connection
from django.db.models import Max

from sessions.models import BrowserSession, PageLogEntry, RecordingStatus, SessionStatus
from sessions.page_logs import LogEntry, page_logs_append
from workers.host_heartbeat import _is_host_worker

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.5
_FLUSH_SECONDS = 0.5
_RETRY_SECONDS = 2.0
# Entries waiting for the writer, all sessions of the host together; beyond it they are dropped
# (and logged): a page that floods the console must not grow the worker's memory.
_QUEUE_MAX = 20_000
# Requests seen but not finished, per collector; the oldest is forgotten beyond it.
_PENDING_MAX = 2_000
_TEXT_MAX = 2_000
_URL_MAX = 2_048

_stopping = threading.Event()
_collectors: dict[str, _Collector] = {}
_failed_at: dict[str, float] = {}
_queue: queue.Queue[tuple[str, LogEntry]] = queue.Queue(maxsize=_QUEUE_MAX)
_lost = itertools.count()
# Sessions this host records (their screencast runs while they live, watched or not), by the
# supervisor's last look; read by workers/screencast.py.
recorded_sessions: frozenset[str] = frozenset()

_CONSOLE_LEVELS = {
    "debug": "debug",
    "trace": "debug",
    "verbose": "debug",
    "warning": "warning",
    "error": "error",
    "assert": "error",
}


def _clip(text: Any, limit: int = _TEXT_MAX) -> str:
    value = str(text or "")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _url(value: Any) -> str:
    url = str(value or "")
    if url.startswith("data:"):
        return url[: url.find(",") + 1] + "…" if "," in url else "data:…"
    return _clip(url, _URL_MAX)


def _remote_text(arg: dict[str, Any]) -> str:
    if "value" in arg:
        value = arg["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return str(arg.get("description") or arg.get("unserializableValue") or arg.get("type", ""))


def _at(ms: float | None) -> datetime:
    return datetime.fromtimestamp((ms or time.time() * 1000) / 1000, tz=UTC)


def devtools_browser_url(profile_dir: str) -> str | None:
    for path in (
        Path(profile_dir) / "profile" / "DevToolsActivePort",
        Path(profile_dir) / "DevToolsActivePort",
    ):
        try:
            port, ws_path = path.read_text().split()[:2]
            return f"ws://127.0.0.1:{int(port)}{ws_path}"
        except (OSError, ValueError):
            continue
    return None


class _Collector(threading.Thread):
    def __init__(self, session_id: str, profile_dir: str, since_ms: float) -> None:
        super().__init__(name=f"page-logs-{session_id}", daemon=True)
        self.session_id = session_id
        self.profile_dir = profile_dir
        # Runtime.enable and Log.enable replay what the page logged before we attached: skip
        # what a previous collector of this session stored already.
        self.since_ms = since_ms
        self.stop = threading.Event()
        self._ids = itertools.count(1)
        self._tabs: dict[str, str] = {}  # DevTools session id -> target id (the tab)
        self._pending: dict[str, dict[str, Any]] = {}

    def run(self) -> None:
        try:
            self._collect()
        except Exception as exc:  # the browser went, DevTools hiccup: tried again by the supervisor
            _failed_at[self.session_id] = time.monotonic()
            logger.info("page logs of %s stopped: %r", self.session_id, exc)

    def _send(
        self, ws: websocket.WebSocket, method: str, params: dict[str, Any], session: str | None = None
    ) -> None:
        message: dict[str, Any] = {"id": next(self._ids), "method": method, "params": params}
        if session:
            message["sessionId"] = session
        ws.send(json.dumps(message))

    def _collect(self) -> None:
        url = devtools_browser_url(self.profile_dir)
        if url is None:
            raise RuntimeError("no DevTools endpoint yet")
        ws = websocket.create_connection(url, timeout=5, suppress_origin=True)
        try:
            self._send(ws, "Target.setDiscoverTargets", {"discover": True})
            ws.settimeout(0.5)
            while not self.stop.is_set() and not _stopping.is_set():
                try:
                    raw = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                message = json.loads(raw)
                method = message.get("method")
                if method:
                    self._on_event(ws, method, message.get("params") or {}, message.get("sessionId"))
        finally:
            with contextlib.suppress(Exception):
                ws.close()

    def _on_event(
        self, ws: websocket.WebSocket, method: str, params: dict[str, Any], session: str | None
    ) -> None:
        if method == "Target.targetCreated":
            info = params.get("targetInfo") or {}
            if info.get("type") == "page":
                self._send(ws, "Target.attachToTarget", {"targetId": info["targetId"], "flatten": True})
        elif method == "Target.attachedToTarget":
            tab_session = params["sessionId"]
            self._tabs[tab_session] = (params.get("targetInfo") or {}).get("targetId", "")
            self._send(ws, "Runtime.enable", {}, tab_session)
            self._send(ws, "Log.enable", {}, tab_session)
            # No response bodies are ever read: keep Chromium's buffer for them minimal.
            self._send(
                ws, "Network.enable", {"maxTotalBufferSize": 1, "maxResourceBufferSize": 1}, tab_session
            )
        elif method == "Target.detachedFromTarget":
            self._tabs.pop(params.get("sessionId", ""), None)
        elif method == "Runtime.consoleAPICalled":
            self._console(params, session)
        elif method == "Runtime.exceptionThrown":
            self._exception(params, session)
        elif method == "Log.entryAdded":
            self._log_entry(params.get("entry") or {}, session)
        elif method.startswith("Network."):
            self._network(method, params, session)

    def _emit(self, kind: str, level: str, at: datetime, data: dict[str, Any]) -> None:
        try:
            _queue.put_nowait((self.session_id, LogEntry(kind=kind, level=level, at=at, data=data)))
        except queue.Full:
            if next(_lost) % 1000 == 0:
                logger.warning("page logs: the writer is behind; entries dropped")

    def _tab(self, session: str | None) -> str | None:
        return self._tabs.get(session or "")

    def _console(self, params: dict[str, Any], session: str | None) -> None:
        ts = params.get("timestamp")
        if ts is not None and ts <= self.since_ms:
            return
        kind = str(params.get("type", "log"))
        frame = ((params.get("stackTrace") or {}).get("callFrames") or [{}])[0]
        self._emit(
            "console",
            _CONSOLE_LEVELS.get(kind, "info"),
            _at(ts),
            {
                "message": _clip(" ".join(_remote_text(a) for a in params.get("args") or [])),
                "source": f"console.{kind}",
                "url": _url(frame.get("url")) or None,
                "line": frame.get("lineNumber"),
                "column": frame.get("columnNumber"),
                "tab_id": self._tab(session),
            },
        )

    def _exception(self, params: dict[str, Any], session: str | None) -> None:
        ts = params.get("timestamp")
        if ts is not None and ts <= self.since_ms:
            return
        details = params.get("exceptionDetails") or {}
        text = (details.get("exception") or {}).get("description") or details.get("text") or "error"
        self._emit(
            "error",
            "error",
            _at(ts),
            {
                "message": _clip(text),
                "source": "exception",
                "url": _url(details.get("url")) or None,
                "line": details.get("lineNumber"),
                "column": details.get("columnNumber"),
                "tab_id": self._tab(session),
            },
        )

    def _log_entry(self, entry: dict[str, Any], session: str | None) -> None:
        ts = entry.get("timestamp")
        if ts is not None and ts <= self.since_ms:
            return
        self._emit(
            "console",
            _CONSOLE_LEVELS.get(str(entry.get("level")), "info"),
            _at(ts),
            {
                "message": _clip(entry.get("text")),
                "source": str(entry.get("source", "other")),
                "url": _url(entry.get("url")) or None,
                "line": entry.get("lineNumber"),
                "tab_id": self._tab(session),
            },
        )

    def _network(self, method: str, params: dict[str, Any], session: str | None) -> None:
        request_id = params.get("requestId", "")
        if method == "Network.requestWillBeSent":
            if params.get("redirectResponse") and request_id in self._pending:
                # A redirect: the previous hop ends here with the redirect's status.
                self._finish(request_id, params["timestamp"], response=params["redirectResponse"])
            request = params.get("request") or {}
            if len(self._pending) >= _PENDING_MAX:
                self._pending.pop(next(iter(self._pending)))
            self._pending[request_id] = {
                "method": request.get("method"),
                "url": _url(request.get("url")),
                "resource_type": params.get("type"),
                "wall": params.get("wallTime"),
                "start": params.get("timestamp"),
                "tab_id": self._tab(session),
            }
        elif method == "Network.responseReceived":
            pending = self._pending.get(request_id)
            if pending is not None:
                pending["response"] = params.get("response") or {}
                pending["resource_type"] = params.get("type") or pending.get("resource_type")
        elif method == "Network.loadingFinished":
            self._finish(request_id, params.get("timestamp"), size=params.get("encodedDataLength"))
        elif method == "Network.loadingFailed":
            error = "blocked: " + str(params["blockedReason"]) if params.get("blockedReason") else None
            if params.get("canceled"):
                error = "canceled"
            self._finish(
                request_id, params.get("timestamp"), error=error or params.get("errorText") or "failed"
            )

    def _finish(
        self,
        request_id: str,
        end: float | None,
        *,
        response: dict[str, Any] | None = None,
        size: float | None = None,
        error: str | None = None,
    ) -> None:
        pending = self._pending.pop(request_id, None)
        if pending is None:
            return
        response = response or pending.get("response") or {}
        status = response.get("status")
        status = int(status) if status else None
        start = pending.get("start")
        wall = pending.get("wall")
        if error or (status or 0) >= 500:
            level = "error"
        elif (status or 0) >= 400:
            level = "warning"
        else:
            level = "info"
        self._emit(
            "network",
            level,
            _at(wall * 1000 if wall else None),
            {
                "method": pending.get("method"),
                "url": pending.get("url"),
                "status": status,
                "status_text": _clip(response.get("statusText"), 200) or None,
                "resource_type": pending.get("resource_type"),
                "mime_type": response.get("mimeType") or None,
                "bytes": int(size if size is not None else response.get("encodedDataLength") or 0),
                "duration_ms": round((end - start) * 1000, 1) if end and start else None,
                "from_cache": bool(response.get("fromDiskCache") or response.get("fromPrefetchCache")),
                "error": error,
                "tab_id": pending.get("tab_id"),
            },
        )


def flush_once() -> int:
    """Store what the collectors queued, one batch per session. Returns the entries handled."""
    batches: dict[str, list[LogEntry]] = {}
    handled = 0
    while handled < 5_000:
        try:
            session_id, entry = _queue.get_nowait()
        except queue.Empty:
            break
        batches.setdefault(session_id, []).append(entry)
        handled += 1
    for session_id, entries in batches.items():
        page_logs_append(session_id=session_id, entries=entries)
    return handled


def _write_forever() -> None:
    while not _stopping.is_set():
        try:
            if flush_once() == 0:
                _stopping.wait(_FLUSH_SECONDS)
        except Exception:
            logger.exception("page logs: writing failed")
            connection.close()
            _stopping.wait(_RETRY_SECONDS)
    with contextlib.suppress(Exception):
        flush_once()  # what the collectors read before the worker stopped


def _stored_until(session_id: str) -> float:
    latest = PageLogEntry.objects.filter(session_id=session_id).aggregate(at=Max("at"))["at"]
    return latest.timestamp() * 1000 if latest else 0.0


def supervise_once(host: str) -> None:
    """Keep one collector per live local session of `host` (the browser is up), none for others."""
    global recorded_sessions
    rows = list(
        BrowserSession.objects.filter(
            host=host, backend="local", status__in=[SessionStatus.READY, SessionStatus.RUNNING]
        )
        .exclude(profile_dir="")
        .values_list("id", "profile_dir", "recording__status")
    )
    recorded_sessions = frozenset(sid for sid, _, rec in rows if rec == RecordingStatus.RECORDING)
    live = {sid: profile for sid, profile, _ in rows}
    if not settings.SESSION_LOGS_ENABLED:
        live = {}
    now = time.monotonic()
    for session_id, profile_dir in live.items():
        collector = _collectors.get(session_id)
        if collector is not None and collector.is_alive():
            continue
        if now - _failed_at.get(session_id, 0.0) < _RETRY_SECONDS:
            continue
        since = _stored_until(session_id)
        _collectors[session_id] = collector = _Collector(session_id, profile_dir, since)
        collector.start()
    for session_id, collector in list(_collectors.items()):
        if session_id not in live:
            collector.stop.set()
            if not collector.is_alive():
                del _collectors[session_id]
                _failed_at.pop(session_id, None)


def _supervise_forever() -> None:
    host = settings.WORKER_HOST
    while not _stopping.wait(_POLL_SECONDS):
        try:
            supervise_once(host)
        except Exception:
            logger.exception("page logs supervisor failed")
            connection.close()


@worker_ready.connect
def _start_supervisor(sender: object, **_: object) -> None:
    if settings.BROWSER_BACKEND != "local" or not _is_host_worker(sender):
        return
    threading.Thread(target=_supervise_forever, name="page-logs-supervisor", daemon=True).start()
    threading.Thread(target=_write_forever, name="page-logs-writer", daemon=True).start()


@worker_shutdown.connect
def _stop_collectors(**_: object) -> None:
    _stopping.set()
