"""The screencast on the browser's host: DevTools' Page.startScreencast, only while someone watches.

The host's lifecycle worker runs one supervisor thread in its main process (like the heartbeat,
workers/fleet.py). It polls `bf:cast:host:<host>` (sessions/screencast.py) every
`_POLL_SECONDS`; for each session an open stream watches, it runs one caster thread that
connects to that browser's DevTools endpoint on this host's loopback (the port Chromium wrote to
`DevToolsActivePort` in its profile; chromedriver starts it with `--remote-debugging-port=0`),
asks the page for a JPEG screencast and passes each frame on to Redis, where the web side's
streams read it. Chromium sends a frame when the page repaints, at most one per acknowledged
frame, so an idle page costs nothing and a changing one as many frames as the network and the
host allow; when frames that were in flight together stop, the caster restarts the screencast
once (SETTLE_SECONDS), for a frame of the page as it settled. When nobody watches any more (no
stream alive within WATCHER_TTL_SECONDS), or the browser goes, the caster stops.

Local backend only: a Grid node's DevTools endpoint is on the node's loopback, which the
workers cannot reach (docs/streams.md).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
import urllib.request
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

import websocket
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import connection
from redis.exceptions import RedisError

from project.redis import get_redis
from sessions.events import ACTION_REQUEST, ACTION_RESPONSE, events_key
from sessions.models import LIVE_STATUSES, BrowserSession
from sessions.screencast import (
    FRAMES_KEPT,
    FRAMES_TTL_SECONDS,
    frames_key,
    host_watch_key,
    screencast_watched,
)
from workers import page_logs
from workers.host_heartbeat import _is_host_worker
from workers.recorder import Recorder

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.25
# A caster that failed (browser still starting, DevTools not answering) is tried again after this.
_RETRY_SECONDS = 2.0
JPEG_QUALITY = 60
# A recording caster checks this often that it still casts the session's main tab (and how much
# room its account's recording storage has left).
_RECORDING_CHECK_SECONDS = 2.0
_FIRST_FRAME_SECONDS = 5.0
# A recording caster reads the session's action events (sessions/events.py) this often: the
# recorder writes a frame at each action's finish (workers/recorder.py).
_ACTION_EVENTS_SECONDS = 0.1
# Chromium captures no repaint while three frames are unacknowledged (captured, being encoded or
# sent, or not yet acked by us: `kMaxScreencastFramesInFlight` in its page_handler.cc) and never
# sends the one it skipped: on a loaded host, where a frame takes a few hundred ms to reach us,
# the last repaint of a burst (a click's: hover, press, the page's change) can be the one left
# out, and the stream shows the page before it until the next repaint. So after frames that were
# in flight together (_Settle), when frames stop coming for SETTLE_SECONDS, the caster restarts
# the screencast once; Chromium answers a start with a frame of the page as it is now (shown by
# tests/workers/test_screencast_settle.py).
SETTLE_SECONDS = 0.25
# A frame is in flight from a little before its stamp (Chromium stamps it when its copy reaches
# the browser process, after the capture was counted) until our ack.
_CAPTURE_MARGIN_SECONDS = 0.05


class _Settle:
    """When a caster restarts its screencast. A frame stamped while an earlier one was still
    unacked (within _CAPTURE_MARGIN_SECONDS) means frames were in flight together, so Chromium may
    have skipped a repaint: the stream is restarted once the frames stop for SETTLE_SECONDS.
    Frames that come one at a time (an idle host: ~25 ms from stamp to ack) restart nothing. The
    frame that answers a (re)start (a new screencast number) arms nothing."""

    def __init__(self) -> None:
        self.cast_number: Any = None
        self.acked: deque[float] = deque(maxlen=3)  # wall-clock ack times of the last frames
        self.due: float | None = None  # monotonic; set while frames were in flight together

    def frame(self, cast_number: Any, stamp: float | None, *, acked_at: float, now: float) -> None:
        """A frame of screencast `cast_number`, stamped `stamp` (epoch s; None: unknown), acked at
        `acked_at` (epoch s), `now` on the monotonic clock."""
        if cast_number != self.cast_number:
            self.cast_number = cast_number
            self.acked.clear()
            self.acked.append(acked_at)
            self.due = None
            return
        together = stamp is None or any(a > stamp - _CAPTURE_MARGIN_SECONDS for a in self.acked)
        self.acked.append(acked_at)
        if together or self.due is not None:
            self.due = now + SETTLE_SECONDS

    def take(self, now: float) -> bool:
        """Whether to restart the screencast now (once per settle)."""
        if self.due is None or now < self.due:
            return False
        self.due = None
        return True


_stopping = threading.Event()
_casters: dict[str, _Caster] = {}
_failed_at: dict[str, float] = {}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment, without decoding it."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        i += 2 + length
    return None


def devtools_port(profile_dir: str) -> int | None:
    """The DevTools port Chromium chose, from `<user data dir>/DevToolsActivePort`."""
    for path in (
        Path(profile_dir) / "profile" / "DevToolsActivePort",
        Path(profile_dir) / "DevToolsActivePort",
    ):
        try:
            return int(path.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            continue
    return None


def _page_websocket(port: int, tab_id: str) -> str | None:
    """The DevTools WebSocket URL of the session's main tab (a WebDriver window handle is its
    DevTools target id), else of its first page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=3) as reply:
        targets = [t for t in json.loads(reply.read()) if t.get("type") == "page"]
    chosen = next((t for t in targets if t.get("id") == tab_id), targets[0] if targets else None)
    return chosen.get("webSocketDebuggerUrl") if chosen else None


def _epoch_ms(value: str) -> float:
    return datetime.fromisoformat(value).timestamp() * 1000


class _ActionEvents:
    """The session's actions as asked for and finished, read from its events stream (the one the
    events SSE serves; appended by the action's code after its commit, so reading it adds nothing
    to an action's path) and handed to the recorder. The first read takes what the stream still
    holds: a caster that starts late knows which actions are under way."""

    _COUNT = 500

    def __init__(self, session_id: str) -> None:
        self.key = events_key(session_id)
        self.last_id: bytes | str = "0-0"
        self.read_at = 0.0

    def feed(self, recorder: Recorder) -> None:
        self.read_at = time.monotonic()
        try:
            while True:
                reply: Any = get_redis().xread({self.key: self.last_id}, count=self._COUNT)
                entries: list[tuple[bytes, dict[bytes, bytes]]] = reply[0][1] if reply else []
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    event = fields.get(b"event", b"").decode()
                    if event not in (ACTION_REQUEST, ACTION_RESPONSE):
                        continue
                    data = json.loads(fields[b"data"])
                    if event == ACTION_REQUEST:
                        recorder.action_requested(
                            data["action_id"], _epoch_ms(data["created_at"]), data.get("type", "")
                        )
                    elif data.get("finished_at"):
                        recorder.action_finished(
                            data["action_id"], _epoch_ms(data["finished_at"]), data.get("type", "")
                        )
                if len(entries) < self._COUNT:
                    return
        except (RedisError, ValueError, KeyError, TypeError) as exc:
            # Frames are still sampled; an action missed here gets no frame of its own.
            logger.info("recording of %s: action events not read (%r)", recorder.session_id, exc)


class _Caster(threading.Thread):
    def __init__(self, session_id: str) -> None:
        super().__init__(name=f"screencast-{session_id}", daemon=True)
        self.session_id = session_id
        self.stop = threading.Event()
        self.frames = 0
        # Whether an open stream watches (frames go to Redis) and whether the session records
        # (frames go to its recording's files); set by the supervisor.
        self.watched = True
        self.recorded = False
        self.recorder: Recorder | None = None
        self.actions = _ActionEvents(session_id)

    def run(self) -> None:
        try:
            self._cast()
            logger.info("screencast of %s ended after %d frames", self.session_id, self.frames)
        except Exception as exc:  # a browser that went away, a DevTools hiccup: tried again later
            _failed_at[self.session_id] = time.monotonic()
            logger.info("screencast of %s stopped after %d frames: %r", self.session_id, self.frames, exc)
        finally:
            connection.close()
            if self.recorder is not None:
                with contextlib.suppress(Exception):  # the last action's finish, if not read yet
                    self.actions.feed(self.recorder)
                with contextlib.suppress(OSError):
                    self.recorder.close()

    def _cast(self) -> None:
        row = (
            BrowserSession.objects.filter(pk=self.session_id, status__in=LIVE_STATUSES)
            .values(
                "backend",
                "profile_dir",
                "main_tab_id",
                "display_width",
                "display_height",
                "display_scale",
                "account_id",
            )
            .first()
        )
        connection.close()  # not held while casting
        if row is None or row["backend"] != "local" or not row["profile_dir"]:
            _failed_at[self.session_id] = time.monotonic()
            return
        port = devtools_port(row["profile_dir"])
        url = _page_websocket(port, row["main_tab_id"]) if port else None
        if url is None:
            raise RuntimeError("no DevTools endpoint yet")
        ws = websocket.create_connection(url, timeout=5, suppress_origin=True)
        account_id = row["account_id"]
        try:
            scale = row["display_scale"] or 1.0
            start = {
                "method": "Page.startScreencast",
                "params": {
                    "format": "jpeg",
                    "quality": JPEG_QUALITY,
                    "maxWidth": int(row["display_width"] * scale),
                    "maxHeight": int(row["display_height"] * scale),
                    "everyNthFrame": 1,
                },
            }
            ws.send(json.dumps({"id": 1, **start}))
            next_id = 2
            settle = _Settle()
            target_id = url.rsplit("/", 1)[-1]
            started = checked = time.monotonic()
            while not self.stop.is_set() and not _stopping.is_set():
                if self.recorder is not None and time.monotonic() - checked >= _RECORDING_CHECK_SECONDS:
                    checked = time.monotonic()
                    if not self._still_on_main_tab(target_id, since=checked - started):
                        return
                    self.recorder.refresh_room()
                if self.recorded and self.recorder is None:
                    self.recorder = Recorder(account_id=account_id, session_id=self.session_id)
                if (
                    self.recorder is not None
                    and time.monotonic() - self.actions.read_at >= _ACTION_EVENTS_SECONDS
                ):
                    self.actions.feed(self.recorder)
                    self.recorder.tick()
                if settle.take(time.monotonic()):
                    for method in ({"method": "Page.stopScreencast"}, start):
                        ws.send(json.dumps({"id": next_id, **method}))
                        next_id += 1
                # A recorder writes what is due (a waiting frame's turn, an action's frame) as
                # time passes: tick often enough.
                timeout = _ACTION_EVENTS_SECONDS if self.recorder is not None else 0.5
                if settle.due is not None:
                    timeout = max(0.01, min(timeout, settle.due - time.monotonic()))
                ws.settimeout(timeout)
                try:
                    message = json.loads(ws.recv())
                except websocket.WebSocketTimeoutException:
                    continue
                if message.get("method") != "Page.screencastFrame":
                    continue
                params = message["params"]
                ws.send(
                    json.dumps(
                        {
                            "id": next_id,
                            "method": "Page.screencastFrameAck",
                            "params": {"sessionId": params["sessionId"]},
                        }
                    )
                )
                next_id += 1
                stamp = params.get("metadata", {}).get("timestamp")
                settle.frame(
                    params.get("sessionId"),
                    float(stamp) if stamp else None,
                    acked_at=time.time(),
                    now=time.monotonic(),
                )
                self.frames += 1
                if self.recorder is not None:
                    self._record(params)
                if self.watched:
                    self._publish(params)
            with contextlib.suppress(Exception):  # the browser may be gone already
                ws.send(json.dumps({"id": next_id, "method": "Page.stopScreencast"}))
        finally:
            ws.close()

    def _still_on_main_tab(self, target_id: str, *, since: float) -> bool:
        """A recording follows the session's main tab: False (the caster ends, the supervisor
        starts a new one at once) when it changed. Chromium sends a first frame as soon as a
        screencast starts; none after a while means a screencast that will not run: raise (tried
        again)."""
        if self.frames == 0 and since > _FIRST_FRAME_SECONDS:
            raise RuntimeError("no frame since the screencast started")
        main_tab = (
            BrowserSession.objects.filter(pk=self.session_id).values_list("main_tab_id", flat=True).first()
        )
        return not main_tab or main_tab == target_id

    def _record(self, params: dict[str, Any]) -> None:
        assert self.recorder is not None
        meta = params.get("metadata", {})
        data: str = params["data"]
        size = jpeg_size(base64.b64decode(data[:4096] + "=" * (-len(data[:4096]) % 4))) or (0, 0)
        stamp = meta.get("timestamp")
        self.recorder.offer(data, float(stamp) * 1000 if stamp else time.time() * 1000, size[0], size[1])

    def _publish(self, params: dict[str, Any]) -> None:
        data: str = params["data"]
        meta = params.get("metadata", {})
        size = jpeg_size(base64.b64decode(data[:4096] + "=" * (-len(data[:4096]) % 4)))
        metadata = {
            "timestamp": meta.get("timestamp"),
            "width": size[0] if size else None,
            "height": size[1] if size else None,
            "device_width": meta.get("deviceWidth"),
            "device_height": meta.get("deviceHeight"),
            "page_scale_factor": meta.get("pageScaleFactor"),
            "offset_top": meta.get("offsetTop"),
            "scroll_offset_x": meta.get("scrollOffsetX"),
            "scroll_offset_y": meta.get("scrollOffsetY"),
        }
        key = frames_key(self.session_id)
        pipe = get_redis().pipeline(transaction=False)
        pipe.xadd(
            key, {"image_data": data, "metadata": json.dumps(metadata)}, maxlen=FRAMES_KEPT, approximate=False
        )
        pipe.expire(key, FRAMES_TTL_SECONDS)
        pipe.execute()


def supervise_once(host: str) -> None:
    """Start a caster for each watched session of `host`, stop those nobody watches."""
    redis = get_redis()
    asked = {s.decode() if isinstance(s, bytes) else s for s in redis.smembers(host_watch_key(host))}
    recorded = page_logs.recorded_sessions  # recorded sessions are cast while they live
    now = time.monotonic()
    for session_id in asked | recorded:
        caster = _casters.get(session_id)
        watched = session_id in asked and screencast_watched(session_id=session_id)
        if session_id in asked and not watched:
            redis.srem(host_watch_key(host), session_id)
        if not watched and session_id not in recorded:
            _failed_at.pop(session_id, None)
            if caster is not None:
                caster.stop.set()
            continue
        if caster is not None and caster.is_alive():
            caster.watched, caster.recorded = watched, session_id in recorded
            continue
        if now - _failed_at.get(session_id, 0.0) < _RETRY_SECONDS:
            continue
        _casters[session_id] = caster = _Caster(session_id)
        caster.watched, caster.recorded = watched, session_id in recorded
        caster.start()
    for session_id, caster in list(_casters.items()):
        if session_id not in asked and session_id not in recorded:
            caster.stop.set()
        if not caster.is_alive() and (session_id not in asked or caster.stop.is_set()):
            del _casters[session_id]


def _supervise_forever() -> None:
    host = settings.WORKER_HOST
    while not _stopping.wait(_POLL_SECONDS):
        try:
            supervise_once(host)
        except RedisError as exc:
            logger.warning("screencast supervisor: Redis failed (%r)", exc)
        except Exception:
            logger.exception("screencast supervisor failed")


@worker_ready.connect
def _start_supervisor(sender: object, **_: object) -> None:
    if settings.BROWSER_BACKEND != "local" or not _is_host_worker(sender):
        return
    threading.Thread(target=_supervise_forever, name="screencast-supervisor", daemon=True).start()


@worker_shutdown.connect
def _stop_casters(**_: object) -> None:
    _stopping.set()
