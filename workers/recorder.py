"""Writes a recorded session's screencast frames to its recording's files (sessions/recordings.py).

One Recorder per caster (workers/screencast.py) of a recorded session. It is given two kinds of
things, each with the time it happened at: the frames DevTools paints (`offer`), and the
session's actions as they are asked for and finish (`action_requested`, `action_finished`: the
caster reads them from the session's events stream in Redis, sessions/events.py, so nothing is
added to an action's path). Both come late and by different roads, so the recorder holds them
HOLD_MS and then walks them in time order, writing:

- sampled frames: at most RECORDING_FPS a second; a frame that comes too soon after the last one
  written waits and is replaced by a newer one, and is written when its turn comes (the last
  state of a burst is always in the recording);
- one frame per finished action, showing the page as the action left it: the last frame painted
  after its finish and before the next action that may change the page was asked for (its request
  is the earliest it may start), within ACTION_FRAME_WAIT_MS of the finish; the frames painted
  before that one in this window are not written (the action's frame is the first entry at or
  after its finish, sessions/recordings.py). Not the first frame after the finish: Chromium stamps
  a screencast frame when its copy reaches the browser process, not when it was painted, so on a
  loaded host the first frame stamped after a click's finish can still show the page before the
  click's repaint. With no frame in the window, the action gets the picture on screen at its
  finish (the last frame painted before it: the action changed nothing, or its repaint came
  after the next action was asked for), as an entry at the finish time. An action of
  READ_ONLY_ACTIONS gets the picture on screen at once, unless an action before it may still be
  repainted: then it waits with that one, until the next request. An action asked for while
  another ran starts as soon as that one finishes: that one gets the picture on screen at its
  finish.

A picture that is the same as the last one written (an action that changed nothing, a repaint
that changed no pixel) is an index entry pointing at the bytes already stored (same offset and
length), not a second copy: a recording's bytes are those of its distinct offsets
(`recording_frames_bytes`). Entries' times only grow (an entry that would share the last one's
millisecond is put 1 ms after it).

Each frame's bytes are written before its index line, and both are flushed at once: a crash
leaves at most one torn frame, which the index reader skips; what was held (at most HOLD_MS and
the wait for an action's repaint) is lost with a crashed worker, and written by `close`
otherwise.
"""

from __future__ import annotations

import base64
import bisect
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
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

# Frames and action events are put in time order this long after they happened (an action's
# events reach the caster through Redis, polled every 0.1 s; a loaded host delays both).
HOLD_MS = 1000.0
# How long after an action's finish its repaints are its own (when no next action comes first).
ACTION_FRAME_WAIT_MS = 1000.0
# Held frames beyond this many are walked at once (an animating page sends up to ~60 a second).
_MAX_HELD_FRAMES = 120
# A request whose finish never came (an event lost with Redis) stops counting after this.
_OUTSTANDING_MS = 15 * 60 * 1000.0

# Actions that leave the page as it is: a frame painted while one runs still shows the page as
# the action before it left it.
READ_ONLY_ACTIONS = frozenset({"wait", "html", "screenshot", "list_tabs"})

# Timeline events (asked for, finished; that may change the page or not), in this order on a tie.
_REQUESTED, _READ, _FINISHED, _FINISHED_READ = 0, 1, 2, 3


@dataclass
class _Shot:
    data: str  # base64 JPEG, as DevTools sent it
    at_ms: float
    width: int
    height: int


@dataclass
class _Mark:
    action_id: str
    at_ms: float  # when the action finished
    changes_page: bool  # a repaint of its own may follow


class Recorder:
    def __init__(self, *, account_id: int, session_id: str, clock: Callable[[], float] = time.time) -> None:
        self.folder: Path = recording_dir(account_id=account_id, session_id=session_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._frames: IO[bytes] = open(self.folder / FRAMES_FILE, "ab")  # noqa: SIM115 (closed in close())
        self._offset = self._frames.tell()
        self._last_t: int | None = None  # the last index entry's time
        self._first_ms: float | None = None
        self._resume()
        self._index: IO[str] = open(self.folder / INDEX_FILE, "a")  # noqa: SIM115
        self._interval_ms = 1000 / settings.RECORDING_FPS
        self._last_ms: float | None = None  # the sampling's last written time
        self._pending: _Shot | None = None
        self._held: deque[_Shot] = deque()
        self._newest_ms = -math.inf  # the latest stamp of a frame offered
        self._events: list[tuple[float, int, str]] = []  # (time, _REQUESTED|_FINISHED, action id)
        self._done_ms = -math.inf  # the timeline is walked up to here (its last item's time)
        self._marks: list[_Mark] = []  # finished actions waiting for their frame
        self._window: _Shot | None = None  # the last frame painted since the first mark's finish
        self._orphan = False  # actions finished before any picture: the next frame is theirs
        # Actions asked for, not finished: when, and whether they may change the page.
        self._outstanding: dict[str, tuple[float, bool]] = {}
        self._last_jpeg: bytes | None = None
        self._last_entry = (0, 0, 0, 0)  # offset, length, width, height of the last entry
        self.stopped = (self.folder / TRUNCATED_FILE).exists()
        self.written = 0
        self.action_frames = 0
        self.account_id, self.session_id = account_id, session_id
        self._room_limit = 0  # the frames file may grow to this size under the account's cap
        self.refresh_room()

    def _resume(self) -> None:
        """A caster restarted (a worker restart, a new main tab) appends to the files: entries go
        on from the last one's time, and the length cap counts from the first one's."""
        path = self.folder / INDEX_FILE
        try:
            with open(path, "rb") as index:
                head = index.readline()
                size = index.seek(0, 2)
                index.seek(max(0, size - 4096))
                tail = index.read()
        except OSError:
            return
        if tail and not tail.endswith(b"\n"):  # a line torn by a crash: not glued to the next
            with open(path, "a") as index:
                index.write("\n")
        for line, first in ((head, True), *((t, False) for t in reversed(tail.splitlines()))):
            parts = line.split(b"\t")
            if len(parts) != 5:
                continue
            try:
                at = int(parts[2])
            except ValueError:
                continue
            if first:
                self._first_ms = at
            else:
                self._last_t = at
                break

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
        self._held.clear()
        self._events.clear()
        self._pending = None
        self._window = None
        self._marks.clear()

    # What the caster hands over.

    def offer(self, data: str, at_ms: float, width: int, height: int) -> None:
        """A frame from DevTools (base64 JPEG, the time it was painted in ms)."""
        if self.stopped:
            return
        if at_ms < self._newest_ms:
            # Chromium encodes screencast frames on a thread pool and sends each when its encode
            # is done: two frames stamped close together can come in either order. One that
            # comes after a frame stamped later shows the page before that one: it takes its
            # place among the held frames, or is left out when the timeline is past its time (a
            # newer picture is held or written already). Never the last picture of a window.
            if at_ms >= self._done_ms:
                place = len(self._held)
                while place and self._held[place - 1].at_ms > at_ms:
                    place -= 1
                self._held.insert(place, _Shot(data, at_ms, width, height))
            self.tick()
            return
        self._newest_ms = at_ms
        if self._held:
            at_ms = max(at_ms, self._held[-1].at_ms)
        # Later than the hold (a very late frame): walked as of now rather than back in time.
        self._held.append(_Shot(data, max(at_ms, self._done_ms), width, height))
        self.tick()

    def action_requested(self, action_id: str, at_ms: float, action_type: str = "") -> None:
        """An action of the session was asked for (accepted) at `at_ms`."""
        if not self.stopped:
            kind = _READ if action_type in READ_ONLY_ACTIONS else _REQUESTED
            bisect.insort(self._events, (max(at_ms, self._done_ms), kind, action_id))

    def action_finished(self, action_id: str, at_ms: float, action_type: str = "") -> None:
        """An action of the session finished at `at_ms`. One that comes later than the hold is
        not given a frame of its own (the frames after its finish are written already)."""
        if self.stopped:
            return
        if at_ms < self._done_ms:
            self._outstanding.pop(action_id, None)
            return
        kind = _FINISHED_READ if action_type in READ_ONLY_ACTIONS else _FINISHED
        bisect.insort(self._events, (at_ms, kind, action_id))

    def tick(self, now_ms: float | None = None) -> None:
        """Write what is due: the timeline up to HOLD_MS ago."""
        now = self._clock() * 1000 if now_ms is None else now_ms
        until = now - HOLD_MS
        if len(self._held) > _MAX_HELD_FRAMES:
            until = max(until, self._held[len(self._held) - _MAX_HELD_FRAMES - 1].at_ms)
        self._advance(until)

    def close(self) -> None:
        """Write everything held (the caster ends: the session ended, or its tab changed)."""
        self._advance(math.inf)
        self._frames.close()
        self._index.close()

    # The timeline.

    def _advance(self, until: float) -> None:
        while not self.stopped:
            # (time, rank on a tie, what): a request or finish at a frame's millisecond comes
            # first (a frame painted then is after it); a wait that runs out at a frame's time
            # too (the frame is too late); a pending frame's turn before a frame at its time.
            due: list[tuple[float, int, str]] = []
            if self._events and self._events[0][0] <= until:
                due.append((self._events[0][0], 0, "event"))
            if self._marks and self._marks[0].at_ms + ACTION_FRAME_WAIT_MS <= until:
                due.append((self._marks[0].at_ms + ACTION_FRAME_WAIT_MS, 0, "wait over"))
            if self._pending is not None and self._last_ms is not None:
                turn = self._last_ms + self._interval_ms
                if turn <= until:
                    due.append((turn, 1, "turn"))
            if self._held and self._held[0].at_ms <= until:
                due.append((self._held[0].at_ms, 2, "frame"))
            if not due:
                break
            at, _, what = min(due)
            self._done_ms = max(self._done_ms, at)
            if what == "event":
                at_ms, kind, action_id = self._events.pop(0)
                if kind in (_FINISHED, _FINISHED_READ):
                    self._finished(action_id, at_ms, changes_page=kind == _FINISHED)
                else:
                    self._requested(action_id, at_ms, changes_page=kind == _REQUESTED)
            elif what == "wait over":
                self._pictures_on_screen(self._marks[0].at_ms)
                if not any(m.changes_page for m in self._marks):
                    self._pictures_on_screen()  # no repaint is awaited any more
            elif what == "turn":
                self._write_pending()
            else:
                self._frame(self._held.popleft())

    def _requested(self, action_id: str, at_ms: float, *, changes_page: bool) -> None:
        self._outstanding[action_id] = (at_ms, changes_page)
        # No frame was painted between the finishes waiting and this request: they get the
        # picture on screen, unless this action changes nothing and the last of them may still
        # be repainted (a click's repaint that lands during the screenshot that followed it).
        if changes_page or (self._marks and not self._marks[-1].changes_page):
            self._pictures_on_screen()

    def _finished(self, action_id: str, at_ms: float, *, changes_page: bool) -> None:
        self._outstanding.pop(action_id, None)
        for other, (asked, _) in list(self._outstanding.items()):
            if asked < at_ms - _OUTSTANDING_MS:
                del self._outstanding[other]
        if self._last_t is not None and at_ms < self._last_t:
            return  # before what a previous caster wrote
        self._marks.append(_Mark(action_id, at_ms, changes_page))
        if any(changes for _, changes in self._outstanding.values()):
            # The next action was asked for already and may change the page: it starts at once.
            self._pictures_on_screen()
        elif not any(m.changes_page for m in self._marks):
            # Only actions that change nothing since the last frame: no repaint is coming, the
            # picture on screen is the page as it is.
            self._pictures_on_screen()

    def _frame(self, shot: _Shot) -> None:
        if self._marks:
            # Painted after actions finished: the latest one is theirs when their window closes
            # (_pictures_on_screen); the earlier ones, which may show the page before the
            # action's repaint, are not written.
            self._window = shot
            return
        if self._orphan:
            # Actions finished before this caster's first picture: the first frame is theirs,
            # whatever the sampling (a pending frame whose turn had not come is replaced by it).
            self._pending = None
            self._write_shot(shot)
            self._orphan = False
            return
        if self._last_ms is None or shot.at_ms - self._last_ms >= self._interval_ms:
            self._pending = None
            self._write_shot(shot)
        else:
            self._pending = shot

    def _pictures_on_screen(self, up_to: float = math.inf) -> None:
        """The actions waiting for a frame (those finished at or before `up_to`) get the picture
        on screen at their finish, each an entry at its finish time. A frame painted since the
        first of them finished is written first, as the frame of those finished before it (the
        window closes: the next action may change the page, or the wait ran out)."""
        if self._window is not None:
            shot, self._window = self._window, None
            self._write_pending()  # painted before the finish: its entry comes first
            self._write_shot(shot)
            self._orphan = False
            self.action_frames += sum(1 for m in self._marks if m.at_ms <= shot.at_ms)
            self._marks = [m for m in self._marks if m.at_ms > shot.at_ms]
        closing = [m for m in self._marks if m.at_ms <= up_to]
        self._marks = [m for m in self._marks if m.at_ms > up_to]
        if not closing:
            return
        if self._pending is not None:  # the last frame painted before the finish
            self._write_pending()
        if self._last_jpeg is None:
            self._orphan = True  # nothing painted yet by this caster: the first frame is theirs
            return
        width, height = self._last_entry[2:]
        for mark in closing:
            self._write(self._last_jpeg, mark.at_ms, width, height)
            self.action_frames += 1

    def _write_pending(self) -> None:
        shot, self._pending = self._pending, None
        if shot is not None:
            self._write_shot(shot)

    def _write_shot(self, shot: _Shot) -> None:
        self._write(base64.b64decode(shot.data), shot.at_ms, shot.width, shot.height)

    def _write(self, jpeg: bytes, at_ms: float, width: int, height: int) -> None:
        if self.stopped:
            return
        t = int(at_ms)
        if self._last_t is not None and t <= self._last_t:
            t = self._last_t + 1
        if self._first_ms is None:
            self._first_ms = t
        if t - self._first_ms > settings.RECORDING_MAX_SECONDS * 1000:
            self._stop(f"The recording reached its length cap ({settings.RECORDING_MAX_SECONDS} s).")
            return
        if jpeg == self._last_jpeg:  # the same picture: an entry pointing at the stored bytes
            offset, length = self._last_entry[:2]
        else:
            if self._offset + len(jpeg) > settings.RECORDING_MAX_BYTES:
                self._stop(f"The recording reached its size cap ({settings.RECORDING_MAX_BYTES} bytes).")
                return
            if self._offset + len(jpeg) > self._room_limit:
                self._stop(storage_full_reason(account_id=self.account_id))
                return
            offset, length = self._offset, len(jpeg)
            self._frames.write(jpeg)
            self._frames.flush()
            self._offset += length
        self._index.write(f"{offset}\t{length}\t{t}\t{width}\t{height}\n")
        self._index.flush()
        self._last_t = self._last_ms = t
        self._last_jpeg = jpeg
        self._last_entry = (offset, length, width, height)
        self.written += 1
