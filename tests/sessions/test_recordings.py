"""Recordings without a browser: the recorder's sampling and caps, the finalize that always
settles a recording (ready or failed, also for a torn file or none, also when claimed by many at
once or left by a dead finalizer), and the retention purge (database and files only)."""

from __future__ import annotations

import base64
import secrets
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Account, Plan
from accounts.plans import seed_plans
from accounts.services import account_create
from project.redis import get_redis
from sessions import events
from sessions.models import BrowserSession, RecordingStatus, SessionRecording
from sessions.recordings import (
    FRAMES_FILE,
    INDEX_FILE,
    recording_dir,
    recording_finalize,
    recording_frames,
    recordings_finalize_due,
    recordings_purge,
)
from tests.support.rows import session_row
from workers.recorder import Recorder
from workers.screencast import _ActionEvents

JPEG = b"\xff\xd8" + b"\x00" * 200 + b"\xff\xd9"


@pytest.fixture
def media(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _account():
    seed_plans(Plan)
    return account_create(name="rec", plan_name="pro", credits=0)[0]


def _recorded(account, *, status: str = "running", ended_ago: float | None = None):
    now = timezone.now()
    fields = {}
    if ended_ago is not None:
        fields = {"ended_at": now - timedelta(seconds=ended_ago), "ended_reason": "user"}
        status = "terminated"
    session = session_row(account, status=status, **fields)
    SessionRecording.objects.create(session=session, account=account, created_at=now)
    return session


class _Clock:
    """The recorder's wall clock, moved by the test (ms)."""

    def __init__(self, now_ms: float) -> None:
        self.now_ms = now_ms

    def __call__(self) -> float:
        return self.now_ms / 1000


_BASE_MS = 1_800_000_000_000.0


def _clocked_recorder() -> tuple[Account, BrowserSession, _Clock, Recorder]:
    """An ended recorded session and a recorder on a clock the test moves (at _BASE_MS)."""
    account = _account()
    session = _recorded(account, ended_ago=10)
    clock = _Clock(_BASE_MS)
    return account, session, clock, Recorder(account_id=account.pk, session_id=session.pk, clock=clock)


def _jpeg(n: int) -> bytes:
    """A distinct fake JPEG per n (a picture that changed)."""
    return b"\xff\xd8" + n.to_bytes(4, "big") + b"\x00" * 196 + b"\xff\xd9"


def _b64(jpeg: bytes) -> str:
    return base64.b64encode(jpeg).decode()


def _record(account_id: int, session_id: str, stamps_ms: list[float]) -> Recorder:
    """Frames that come as they are painted (the recorder's clock follows them)."""
    clock = _Clock(stamps_ms[0])
    recorder = Recorder(account_id=account_id, session_id=session_id, clock=clock)
    for n, stamp in enumerate(stamps_ms):
        clock.now_ms = stamp
        recorder.offer(_b64(_jpeg(n)), stamp, 16, 9)
    recorder.close()
    return recorder


def test_the_recorder_keeps_at_most_fps_frames_a_second_and_the_last_of_a_burst(db, media, settings):
    settings.RECORDING_FPS = 5  # one frame per 200 ms
    account = _account()
    session = _recorded(account)
    base = 1_700_000_000_000.0
    # A burst of 10 frames within 90 ms, then one a second later.
    recorder = _record(account.pk, session.pk, [base + i * 10 for i in range(10)] + [base + 1000])
    frames = recording_frames(account_id=account.pk, session_id=session.pk)
    assert [f.at_ms for f in frames] == [int(base), int(base + 90), int(base + 1000)]
    assert recorder.written == 3


def test_the_recorder_stops_at_the_byte_cap_and_says_truncated(db, media, settings):
    settings.RECORDING_MAX_BYTES = len(JPEG) * 3
    account = _account()
    session = _recorded(account, ended_ago=10)
    _record(account.pk, session.pk, [1_000_000.0 + i * 1000 for i in range(6)])
    assert len(recording_frames(account_id=account.pk, session_id=session.pk)) == 3
    assert recording_finalize(session_id=session.pk) == RecordingStatus.READY
    recording = SessionRecording.objects.get(pk=session.pk)
    assert recording.truncated and recording.frame_count == 3


def test_finalize_makes_an_ended_sessions_recording_ready_skipping_a_torn_frame(db, media):
    account = _account()
    session = _recorded(account, ended_ago=10)
    ended_ms = int(session.ended_at.timestamp() * 1000)
    _record(account.pk, session.pk, [ended_ms - 5000, ended_ms - 3000])
    folder = recording_dir(account_id=account.pk, session_id=session.pk)
    # A crash mid-write: an index line whose bytes never made it, and half a line.
    size = (folder / FRAMES_FILE).stat().st_size
    with open(folder / INDEX_FILE, "a") as index:
        index.write(f"{size}\t500\t{ended_ms - 1000}\t16\t9\n{size + 500}\t12")
    assert recording_finalize(session_id=session.pk) == RecordingStatus.READY
    recording = SessionRecording.objects.get(pk=session.pk)
    assert recording.frame_count == 2 and recording.size_bytes == 2 * len(_jpeg(0))
    assert recording.duration_ms == 5000  # the last frame shows until the session ended
    assert recording.finished_at is not None and recording.claimed_until is None
    assert recording_finalize(session_id=session.pk) is None  # settled once


def test_a_recording_without_frames_fails_with_a_reason_and_a_live_one_is_left_alone(db, media):
    account = _account()
    ended = _recorded(account, ended_ago=10)
    live = _recorded(account)
    just_ended = _recorded(account, ended_ago=0)  # its caster may still be writing
    assert recordings_finalize_due() == 1
    failed = SessionRecording.objects.get(pk=ended.pk)
    assert failed.status == RecordingStatus.FAILED and "No frame" in failed.failure_reason
    assert SessionRecording.objects.get(pk=live.pk).status == RecordingStatus.RECORDING
    assert SessionRecording.objects.get(pk=just_ended.pk).status == RecordingStatus.RECORDING


def test_a_claim_left_by_a_dead_finalizer_is_taken_again_and_gives_up_after_three(db, media):
    account = _account()
    session = _recorded(account, ended_ago=10)
    past = timezone.now() - timedelta(seconds=1)
    SessionRecording.objects.filter(pk=session.pk).update(status="processing", claimed_until=past, attempts=1)
    assert recording_finalize(session_id=session.pk) == RecordingStatus.FAILED  # no frames: failed
    other = _recorded(account, ended_ago=10)
    SessionRecording.objects.filter(pk=other.pk).update(status="processing", claimed_until=past, attempts=3)
    assert recording_finalize(session_id=other.pk) == RecordingStatus.FAILED
    assert "3 times" in SessionRecording.objects.get(pk=other.pk).failure_reason
    # A claim still held is not taken.
    held = _recorded(account, ended_ago=10)
    SessionRecording.objects.filter(pk=held.pk).update(
        status="processing", claimed_until=timezone.now() + timedelta(seconds=30), attempts=1
    )
    assert recording_finalize(session_id=held.pk) is None


def test_many_finalizers_at_once_settle_each_recording_exactly_once(transactional_db, media):
    account = _account()
    sessions = [_recorded(account, ended_ago=10) for _ in range(4)]
    for session in sessions[:2]:
        _record(account.pk, session.pk, [1_000_000.0, 1_001_000.0])
    results: list[str | None] = []
    errors: list[BaseException] = []

    def finalize_all() -> None:
        try:
            for session in sessions:
                results.append(recording_finalize(session_id=session.pk))
            recordings_finalize_due()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=finalize_all) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(r for r in results if r) == ["failed", "failed", "ready", "ready"]
    statuses = dict(SessionRecording.objects.values_list("session_id", "status"))
    assert [statuses[s.pk] for s in sessions] == ["ready", "ready", "failed", "failed"]


def test_the_purge_deletes_recordings_past_their_retention_files_and_rows(db, media, settings):
    settings.RECORDING_RETENTION_DAYS = 7
    account = _account()
    Plan.objects.filter(name="pro").update(recording_retention_days=None)  # the setting's
    old, recent = _recorded(account, ended_ago=10), _recorded(account, ended_ago=10)
    for session in (old, recent):
        _record(account.pk, session.pk, [1_000_000.0])
        recording_finalize(session_id=session.pk)
    SessionRecording.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=8))
    assert recordings_purge() == 1
    assert not SessionRecording.objects.filter(pk=old.pk).exists()
    assert not recording_dir(account_id=account.pk, session_id=old.pk).exists()
    assert recording_dir(account_id=account.pk, session_id=recent.pk).exists()
    assert SessionRecording.objects.filter(pk=recent.pk).exists()


def _entries(account_id: int, session_id: str, base: float) -> list[tuple[int, int]]:
    """(time from base, offset) of each index entry."""
    return [
        (f.at_ms - int(base), f.offset)
        for f in recording_frames(account_id=account_id, session_id=session_id)
    ]


def test_every_action_gets_a_frame_at_its_finish_also_when_it_changes_nothing(db, media, settings):
    """An action that changes nothing gets the picture on screen at its finish, as an entry that
    points at the bytes already stored; one that repaints gets the last frame painted after it
    within the wait (no next action was asked for), the earlier ones of that window left out (the
    action's frame is the first entry after its finish); the action events may come after the
    frames (they come through Redis), in any order within the hold."""
    settings.RECORDING_FPS = 5
    account, session, clock, recorder = _clocked_recorder()
    base = _BASE_MS
    j0, j1, j2, j3 = (_jpeg(n) for n in range(4))

    def at(ms: float) -> None:
        clock.now_ms = base + ms
        recorder.tick()

    recorder.offer(_b64(j0), base, 16, 9)  # the page as it stands
    at(120)
    recorder.action_requested("html", base + 100, "html")
    at(180)
    recorder.action_finished("html", base + 150, "html")  # changes nothing: no frame comes
    at(320)
    recorder.action_requested("screenshot", base + 300, "screenshot")
    recorder.action_finished("screenshot", base + 320, "screenshot")
    at(505)
    recorder.action_requested("click", base + 500, "click")
    # The click's repaint, then a burst (an animation): 10 ms apart, inside one sampling interval.
    recorder.offer(_b64(j1), base + 515, 16, 9)
    at(525)
    recorder.offer(_b64(j2), base + 525, 16, 9)
    recorder.offer(_b64(j3), base + 535, 16, 9)
    at(600)
    recorder.action_finished("click", base + 510, "click")  # its event comes after its frames
    at(900)
    assert recorder.written < 5  # held: the action events may still come
    at(5000)
    recorder.close()

    entries = _entries(account.pk, session.pk, base)
    folder = recording_dir(account_id=account.pk, session_id=session.pk)
    offset_of = {0: 0, 1: len(j0), 3: len(j0) + len(j1)}
    # j0; j0 again at the html's and the screenshot's finish (the same bytes); the click's
    # frame: the last painted in the second after its finish, j3 (j1 and j2 are not written).
    assert entries == [
        (0, offset_of[0]),
        (150, offset_of[0]),
        (320, offset_of[0]),
        (535, len(j0)),
    ]
    assert (folder / FRAMES_FILE).read_bytes() == j0 + j3  # each picture stored once
    assert recorder.action_frames == 3
    assert recording_finalize(session_id=session.pk) == RecordingStatus.READY
    recording = SessionRecording.objects.get(pk=session.pk)
    assert recording.frame_count == 4 and recording.size_bytes == len(j0) + len(j3)


def test_a_frame_stamped_after_a_clicks_finish_that_still_shows_the_page_before_is_not_its_frame(
    db, media, settings
):
    """Chromium stamps a screencast frame when its copy reaches the browser process: on a loaded
    host the first frame stamped after a click's finish can be a capture from before the click's
    repaint (CI, 2026-12-03: a click's frame showed the page before the click). The click's frame
    is the last one painted before the next action that may change the page was asked for."""
    settings.RECORDING_FPS = 5
    account, session, clock, recorder = _clocked_recorder()
    base = _BASE_MS
    before, stale, repaint = _jpeg(0), _jpeg(1), _jpeg(2)
    recorder.offer(_b64(before), base, 16, 9)
    recorder.action_requested("click", base + 400, "click")
    recorder.action_finished("click", base + 500, "click")
    recorder.offer(_b64(stale), base + 520, 16, 9)  # the page before the click's repaint
    recorder.offer(_b64(repaint), base + 790, 16, 9)  # the repaint, late on a loaded host
    recorder.action_requested("shot", base + 900, "screenshot")  # changes nothing: no bound
    recorder.action_finished("shot", base + 950, "screenshot")
    recorder.action_requested("click2", base + 1200, "click")  # may change the page: the bound
    recorder.action_finished("click2", base + 1300, "click")
    clock.now_ms = base + 5000
    recorder.close()
    entries = _entries(account.pk, session.pk, base)
    # before; the click's frame, the repaint (the stale capture is left out); the screenshot's
    # (finished after it) and the second click's (no repaint within the wait): the picture on
    # screen at their finish.
    assert entries == [(0, 0), (790, len(before)), (950, len(before)), (1300, len(before))]
    assert recorder.action_frames == 3


def test_a_frame_that_comes_after_one_stamped_later_is_never_the_page_as_an_action_left_it(
    db, media, settings
):
    """Chromium encodes screencast frames on a thread pool and sends each when its encode is done,
    so two frames stamped close together can come in either order (CI, 2026-12-03, again: a
    click's frame showed the page before the click, its repaint came first and a capture from
    before it after). A frame that comes after one stamped later takes its place in time among
    the held frames; one older than what the timeline has passed is left out."""
    settings.RECORDING_FPS = 5
    account, session, clock, recorder = _clocked_recorder()
    base = _BASE_MS
    before, hover, repaint, stale = (_jpeg(n) for n in range(4))
    recorder.offer(_b64(before), base, 16, 9)
    recorder.action_requested("click", base + 400, "click")
    recorder.action_finished("click", base + 500, "click")
    clock.now_ms = base + 530
    recorder.offer(_b64(repaint), base + 510, 16, 9)  # the click's repaint, encoded first
    recorder.offer(_b64(hover), base + 495, 16, 9)  # a capture from before it, encoded after
    clock.now_ms = base + 2600  # the hold and the click's wait are over: its frame is written
    recorder.tick()
    recorder.offer(_b64(stale), base + 505, 16, 9)  # older than the timeline: left out
    recorder.action_requested("shot", base + 2700, "screenshot")
    recorder.action_finished("shot", base + 2750, "screenshot")
    clock.now_ms = base + 5000
    recorder.close()
    entries = _entries(account.pk, session.pk, base)
    # before; the capture from before the repaint, at its own time (before the click's finish);
    # the click's frame, its repaint; the screenshot's: the repaint again (no stale capture).
    hover_at = len(before)
    repaint_at = hover_at + len(hover)
    assert entries == [(0, 0), (495, hover_at), (510, repaint_at), (2750, repaint_at)]
    folder = recording_dir(account_id=account.pk, session_id=session.pk)
    assert (folder / FRAMES_FILE).read_bytes() == before + hover + repaint
    assert recorder.action_frames == 2


def test_a_frame_painted_after_the_next_action_was_asked_for_is_not_the_last_ones(db, media, settings):
    """The action's frame is painted before the next action that may change the page could
    start (its request is the bound); a paint that comes later, or an action queued behind
    another that starts at once, leaves the picture on screen at the finish."""
    settings.RECORDING_FPS = 5
    account, session, clock, recorder = _clocked_recorder()
    base = _BASE_MS
    j0, j1, j2 = (_jpeg(n) for n in range(3))
    recorder.offer(_b64(j0), base, 16, 9)
    recorder.action_requested("a", base + 100, "click")
    recorder.action_finished("a", base + 150, "click")
    recorder.action_requested("b", base + 160, "type")  # asked for before a's repaint came
    recorder.offer(_b64(j1), base + 170, 16, 9)
    recorder.action_requested("c", base + 180, "click")  # queued behind b
    recorder.action_finished("b", base + 400, "type")  # c starts at once: nothing is painted between
    recorder.offer(_b64(j2), base + 420, 16, 9)
    recorder.action_finished("c", base + 600, "click")
    clock.now_ms = base + 5000
    recorder.close()
    entries = _entries(account.pk, session.pk, base)
    # a: j0 at its finish (j1 was painted after b was asked for); j1 when painted; b: j1 at its
    # finish (c, queued already, started at once); j2 when painted; c: j2 at its finish.
    assert entries == [
        (0, 0),
        (150, 0),
        (170, len(j0)),
        (400, len(j0)),
        (420, len(j0) + len(j1)),
        (600, len(j0) + len(j1)),
    ]


def test_the_same_picture_again_is_stored_once(db, media):
    account = _account()
    session = _recorded(account, ended_ago=10)
    recorder = Recorder(account_id=account.pk, session_id=session.pk)
    for stamp in (1_000_000.0, 1_001_000.0, 1_002_000.0):
        recorder.offer(_b64(JPEG), stamp, 16, 9)
    recorder.close()
    frames = recording_frames(account_id=account.pk, session_id=session.pk)
    assert [(f.offset, f.length) for f in frames] == [(0, len(JPEG))] * 3
    assert recording_finalize(session_id=session.pk) == RecordingStatus.READY
    recording = SessionRecording.objects.get(pk=session.pk)
    assert recording.frame_count == 3 and recording.size_bytes == len(JPEG)


def test_a_repaint_during_a_read_only_action_is_the_frame_of_the_action_before(db, media, settings):
    """A screenshot asked for at once after a click changes nothing: the click's repaint, painted
    while the screenshot ran, is the click's frame (and the screenshot's)."""
    settings.RECORDING_FPS = 5
    account, session, clock, recorder = _clocked_recorder()
    base = _BASE_MS
    j0, j1 = _jpeg(0), _jpeg(1)
    recorder.offer(_b64(j0), base, 16, 9)
    recorder.action_requested("click", base + 100, "click")
    recorder.action_finished("click", base + 150, "click")
    recorder.action_requested("shot", base + 160, "screenshot")
    recorder.action_finished("shot", base + 190, "screenshot")
    recorder.offer(_b64(j1), base + 230, 16, 9)  # the click's repaint, late
    recorder.action_requested("wait", base + 400, "wait")
    recorder.action_finished("wait", base + 600, "wait")  # nothing painted after: j1 at its finish
    clock.now_ms = base + 5000
    recorder.close()
    assert _entries(account.pk, session.pk, base) == [(0, 0), (230, len(j0)), (600, len(j0))]
    assert recorder.action_frames == 3


def test_actions_after_one_whose_repaint_never_came_get_a_frame_before_the_next_one(db, media):
    """A navigate that finished after its last paint may still be repainted: the read-only
    action after it waits with it, but only until the next action is asked for."""
    account, session, clock, recorder = _clocked_recorder()
    base = _BASE_MS
    recorder.offer(_b64(_jpeg(0)), base, 16, 9)
    recorder.action_requested("nav", base + 50, "navigate")
    recorder.action_finished("nav", base + 100, "navigate")  # no repaint follows
    recorder.action_requested("wait", base + 300, "wait")
    recorder.action_finished("wait", base + 350, "wait")
    recorder.action_requested("html", base + 400, "html")
    recorder.action_finished("html", base + 420, "html")
    clock.now_ms = base + 5000
    recorder.close()
    assert _entries(account.pk, session.pk, base) == [(0, 0), (100, 0), (350, 0), (420, 0)]
    assert recorder.action_frames == 3


def test_the_caster_hands_the_sessions_action_events_to_its_recorder():
    """What the recorder is told comes from the session's events stream (sessions/events.py),
    the one the action's own code writes: the request's and the finish's times and types."""
    session_id = f"comp_feed_{secrets.token_hex(6)}"
    created = datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC)
    finished = created + timedelta(milliseconds=250)
    request = (
        session_id,
        events.ACTION_REQUEST,
        {"action_id": "act_1", "type": "click", "created_at": created.isoformat().replace("+00:00", "Z")},
    )
    finish = events.action_finished_event(
        session_id=session_id,
        action_id="act_1",
        action_type="click",
        action_status="succeeded",
        error="",
        code=None,
        created_at=created,
        started_at=created,
        finished_at=finished,
    )
    status = events.session_status_event(session_id=session_id, status="running")
    events._append([status, request, finish])

    class Told:
        session_id = "x"

        def __init__(self) -> None:
            self.calls: list[tuple[str, str, float, str]] = []

        def action_requested(self, action_id: str, at_ms: float, action_type: str = "") -> None:
            self.calls.append(("requested", action_id, at_ms, action_type))

        def action_finished(self, action_id: str, at_ms: float, action_type: str = "") -> None:
            self.calls.append(("finished", action_id, at_ms, action_type))

    told = Told()
    reader = _ActionEvents(session_id)
    reader.feed(told)  # type: ignore[arg-type]
    reader.feed(told)  # type: ignore[arg-type]  # nothing new: nothing told twice
    assert told.calls == [
        ("requested", "act_1", created.timestamp() * 1000, "click"),
        ("finished", "act_1", finished.timestamp() * 1000, "click"),
    ]
    get_redis().delete(events.events_key(session_id))
