"""Writes a recorded session's screencast frames to its recording's files (sessions/recordings.py).

One Recorder per caster (workers/screencast.py) of a recorded session. DevTools sends a frame each
time the page repaints; the recorder keeps at most RECORDING_FPS a second: a frame that comes
too soon after the last one written waits as `pending` and is replaced by a newer one, and the
caster's tick writes it when its turn comes, so the last state of a burst (the page after a
click) is always in the recording. Each frame's bytes are written before its index line, and
both are flushed at once: a crash leaves at most one torn frame, which the index reader skips.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import IO

from django.conf import settings

from sessions.recordings import (
    FRAMES_FILE,
    INDEX_FILE,
    TRUNCATED_FILE,
    recording_dir,
    recording_storage_room,
    storage_full_reason,
)


class Recorder:
    def __init__(self, *, account_id: int, session_id: str) -> None:
        self.folder: Path = recording_dir(account_id=account_id, session_id=session_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._frames: IO[bytes] = open(self.folder / FRAMES_FILE, "ab")  # noqa: SIM115 (closed in close())
        self._index: IO[str] = open(self.folder / INDEX_FILE, "a")  # noqa: SIM115
        self._offset = self._frames.tell()
        self._interval_ms = 1000 / settings.RECORDING_FPS
        self._last_ms: float | None = None
        self._first_ms: float | None = None
        self._pending: tuple[str, float, int, int] | None = None
        self.stopped = (self.folder / TRUNCATED_FILE).exists()
        self.written = 0
        self.account_id, self.session_id = account_id, session_id
        self._room_limit = 0  # the frames file may grow to this size under the account's cap
        self.refresh_room()

    def refresh_room(self) -> None:
        """Read again how far the frames file may grow under the account's storage cap (the
        account's other recordings grow meanwhile). Called when the recorder starts and by the
        caster every few seconds, never on the path of a frame."""
        room = recording_storage_room(account_id=self.account_id, exclude_session_id=self.session_id)
        self._room_limit = max(0, room)

    def _stop(self, reason: str) -> None:
        """Stop recording: what was written stays a whole recording; the reason is kept."""
        self.stopped = True
        (self.folder / TRUNCATED_FILE).write_text(reason)

    def offer(self, data: str, at_ms: float, width: int, height: int) -> None:
        """A frame from DevTools (base64 JPEG, its timestamp in ms)."""
        if self.stopped:
            return
        self.tick(at_ms)  # a frame still waiting whose turn has come goes first
        self._pending = (data, at_ms, width, height)
        self.tick(at_ms)

    def tick(self, now_ms: float) -> None:
        """Write the pending frame if its turn has come (at most RECORDING_FPS a second)."""
        if self._pending is None or self.stopped:
            return
        if self._last_ms is not None and now_ms - self._last_ms < self._interval_ms:
            return
        data, at_ms, width, height = self._pending
        self._pending = None
        jpeg = base64.b64decode(data)
        if self._first_ms is None:
            self._first_ms = at_ms
        if self._offset + len(jpeg) > settings.RECORDING_MAX_BYTES:
            self._stop(f"The recording reached its size cap ({settings.RECORDING_MAX_BYTES} bytes).")
            return
        if at_ms - self._first_ms > settings.RECORDING_MAX_SECONDS * 1000:
            self._stop(f"The recording reached its length cap ({settings.RECORDING_MAX_SECONDS} s).")
            return
        if self._offset + len(jpeg) > self._room_limit:
            self._stop(storage_full_reason(account_id=self.account_id))
            return
        self._frames.write(jpeg)
        self._frames.flush()
        self._index.write(f"{self._offset}\t{len(jpeg)}\t{int(at_ms)}\t{width}\t{height}\n")
        self._index.flush()
        self._offset += len(jpeg)
        self._last_ms = at_ms
        self.written += 1

    def close(self) -> None:
        if self._pending is not None and not self.stopped:
            self._last_ms = None  # the last frame is written whatever its turn
            self.tick(self._pending[1])
        self._frames.close()
        self._index.close()
