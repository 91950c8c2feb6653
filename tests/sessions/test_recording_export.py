"""A recording's MP4 export and its storage caps, without a browser: the export is claimed once
and encoded by Debian's ffmpeg from the stored frames at their own times (variable frame rate);
ffmpeg missing or failing, and the account's storage cap, end it `failed` with a reason; a lost
export is sent again and gives up after three attempts. The plan's storage cap stops a
recording (a whole file, with the reason) and the plan's retention drives the purge."""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.models import Plan
from accounts.plans import seed_plans
from accounts.services import account_create
from project.exceptions import Busy, Conflict
from sessions.api.recording_views import recording_mp4_response
from sessions.models import ExportStatus, RecordingStatus, SessionRecording
from sessions.recordings import (
    MP4_FILE,
    recording_dir,
    recording_export_claim,
    recording_export_request,
    recording_exports_stale,
    recording_finalize,
    recording_frames,
    recording_open,
    recordings_purge,
)
from tests.support.rows import session_row
from tests.support.video import ffprobe
from workers.recorder import Recorder
from workers.recording_export import recording_export_mp4


@pytest.fixture
def media(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory) -> list[bytes]:
    """Three real JPEGs of 321x241 pixels (odd sides: the encode must make them even)."""
    folder = tmp_path_factory.mktemp("jpegs")
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=321x241:rate=1",
            "-frames:v",
            "3",
            str(folder / "f%d.jpg"),
        ],
        check=True,
    )
    return [(folder / f"f{n}.jpg").read_bytes() for n in (1, 2, 3)]


def _account(plan: str = "pro"):
    seed_plans(Plan)
    return account_create(name="rec", plan_name=plan, credits=0)[0]


def _ready_recording(account, frames: list[bytes], stamps_ms: list[float], *, ended_ms: float):
    now = timezone.now()
    ended_at = datetime.fromtimestamp(ended_ms / 1000, tz=UTC)
    session = session_row(account, status="terminated", ended_at=ended_at, ended_reason="user")
    SessionRecording.objects.create(session=session, account=account, created_at=now)
    recorder = Recorder(account_id=account.pk, session_id=session.pk)
    for jpeg, stamp in zip(frames, stamps_ms, strict=True):
        recorder._last_ms = None  # every frame is kept (the sampling is tested elsewhere)
        recorder.offer(base64.b64encode(jpeg).decode(), stamp, 321, 241)
    recorder.close()
    assert recording_finalize(session_id=session.pk, now=now + timedelta(days=1)) == RecordingStatus.READY
    return SessionRecording.objects.get(pk=session.pk)


def test_the_mp4_is_made_once_from_the_frames_at_their_own_times(
    db, media, jpegs, django_capture_on_commit_callbacks
):
    account = _account()
    base = 1_700_000_000_000.0
    # Frames 10 ms and 2.5 s apart (closer than a 25 fps frame), the last shown 1.49 s until the
    # session ended: 4 s in all.
    recording = _ready_recording(account, jpegs, [base, base + 10, base + 2510], ended_ms=base + 4000)
    assert recording.frame_count == 3 and recording.duration_ms == 4000

    with django_capture_on_commit_callbacks(execute=False) as sent:
        asked = recording_export_request(recording=recording)
        again = recording_export_request(recording=asked)  # a second ask queues nothing more
    assert asked.mp4_status == again.mp4_status == ExportStatus.PROCESSING
    assert len(sent) == 1

    assert recording_export_mp4(session_id=recording.pk) == "ready"
    assert recording_export_mp4(session_id=recording.pk) is None  # made once
    done = SessionRecording.objects.get(pk=recording.pk)
    video = recording_dir(account_id=account.pk, session_id=recording.pk) / MP4_FILE
    assert done.mp4_status == ExportStatus.READY and done.mp4_size_bytes == video.stat().st_size > 0
    probe = ffprobe(video)
    assert probe["codec"] == "h264" and probe["size"] == (320, 240)
    # The recording's frames and the last one again, closing the video at the session's end.
    assert probe["frames"] == 4
    assert abs(probe["seconds"] - 4.0) < 0.2
    # Each frame at its own time, to the millisecond.
    assert [round(t, 3) for t in probe["times"]] == [0.0, 0.01, 2.51, 4.0]
    # Not in any work folder left behind.
    assert sorted(p.name for p in video.parent.iterdir()) == ["frames.jpgs", "index.tsv", MP4_FILE]


@pytest.mark.parametrize(
    ("binary", "reason"),
    [("/nonexistent/ffmpeg", "ffmpeg is not installed"), ("/bin/false", "ffmpeg failed (exit status 1)")],
)
def test_ffmpeg_missing_or_failing_ends_the_export_failed_with_a_reason(
    db, media, jpegs, settings, binary, reason
):
    settings.RECORDING_FFMPEG_BINARY = binary
    account = _account()
    recording = _ready_recording(account, jpegs[:1], [1_700_000_000_000.0], ended_ms=1_700_000_001_000.0)
    recording_export_request(recording=recording)
    assert recording_export_mp4(session_id=recording.pk) == "failed"
    failed = SessionRecording.objects.get(pk=recording.pk)
    assert failed.mp4_status == ExportStatus.FAILED and reason in failed.mp4_failure_reason
    assert "/" not in failed.mp4_failure_reason.replace("/nonexistent/ffmpeg", "")  # no paths shown
    with pytest.raises(Conflict) as refused:
        recording_mp4_response(failed)
    assert refused.value.code == "recording_export_failed"


def test_a_lost_export_is_sent_again_and_fails_after_three_attempts(db, media, jpegs):
    account = _account()
    recording = _ready_recording(account, jpegs[:1], [1_700_000_000_000.0], ended_ms=1_700_000_001_000.0)
    recording_export_request(recording=recording)
    now = timezone.now()
    assert recording_exports_stale(now=now) == []  # just asked
    assert recording_exports_stale(now=now + timedelta(seconds=61)) == [recording.pk]  # never taken
    later = now + timedelta(seconds=61)
    for attempt in range(3):  # each worker dies with its claim
        assert recording_export_claim(session_id=recording.pk, now=later) is not None, attempt
        later += timedelta(hours=1)
    assert recording_export_claim(session_id=recording.pk, now=later) is None
    failed = SessionRecording.objects.get(pk=recording.pk)
    assert failed.mp4_status == ExportStatus.FAILED and "3 times" in failed.mp4_failure_reason


def test_an_unready_recording_is_not_exported(db, media):
    account = _account()
    session = session_row(account, status="running")
    recording = SessionRecording.objects.create(session=session, account=account, created_at=timezone.now())
    with pytest.raises(Busy):
        recording_export_request(recording=recording)
    recording.status, recording.failure_reason = RecordingStatus.FAILED, "No frame was recorded."
    recording.save()
    with pytest.raises(Conflict):
        recording_export_request(recording=recording)


def test_the_mp4_counts_against_the_plans_storage_cap(db, media, jpegs):
    account = _account()
    recording = _ready_recording(account, jpegs, [1e12, 1e12 + 500, 1e12 + 900], ended_ms=1e12 + 2000)
    # Room for the frames and a few bytes more: not for the video.
    Plan.objects.filter(name="pro").update(recording_storage_bytes=recording.size_bytes + 100)
    recording_export_request(recording=recording)
    assert recording_export_mp4(session_id=recording.pk) == "failed"
    failed = SessionRecording.objects.get(pk=recording.pk)
    assert "storage cap" in failed.mp4_failure_reason and failed.mp4_size_bytes == 0
    assert not (recording_dir(account_id=account.pk, session_id=recording.pk) / MP4_FILE).exists()


def test_the_plans_storage_cap_stops_a_recording_with_whole_frames_and_says_so(db, media, jpegs):
    account = _account()
    first = _ready_recording(account, jpegs, [1e12, 1e12 + 500, 1e12 + 900], ended_ms=1e12 + 2000)
    # The account may hold the first recording and two more frames.
    room = first.size_bytes + len(jpegs[0]) + len(jpegs[1])
    Plan.objects.filter(name="pro").update(recording_storage_bytes=room)
    session = session_row(account, status="running")
    SessionRecording.objects.create(session=session, account=account, created_at=timezone.now())
    recorder = Recorder(account_id=account.pk, session_id=session.pk)
    for n, jpeg in enumerate(jpegs * 2):
        recorder._last_ms = None
        recorder.offer(base64.b64encode(jpeg).decode(), 1e12 + n * 1000, 321, 241)
    recorder.close()
    frames = recording_frames(account_id=account.pk, session_id=session.pk)
    assert len(frames) == 2 and recorder.stopped
    session.status, session.ended_at, session.ended_reason = "terminated", timezone.now(), "user"
    session.save()
    assert recording_finalize(session_id=session.pk, now=timezone.now() + timedelta(seconds=5)) == "ready"
    stopped = SessionRecording.objects.get(pk=session.pk)
    assert stopped.frame_count == 2 and stopped.truncated
    assert "storage cap" in stopped.truncated_reason

    # Full now: the next recording says so at once, rather than starting.
    full = session_row(account, status="starting")
    refused = recording_open(session=full, now=timezone.now())
    assert refused.status == RecordingStatus.FAILED and "storage cap" in refused.failure_reason


def test_the_purge_keeps_recordings_for_their_plans_retention(db, media, jpegs, settings):
    settings.RECORDING_RETENTION_DAYS = 7  # for a plan that does not say
    seed_plans(Plan)
    Plan.objects.filter(name="free").update(recording_retention_days=None)
    kept = {}
    for plan, days in (("free", 8), ("pro", 8), ("pro", 15), ("enterprise", 15)):
        account = account_create(name=f"{plan}{days}", plan_name=plan, credits=0)[0]
        recording = _ready_recording(account, jpegs[:1], [1e12], ended_ms=1e12 + 1000)
        recording_export_request(recording=recording)
        recording_export_mp4(session_id=recording.pk)
        finished = timezone.now() - timedelta(days=days)
        SessionRecording.objects.filter(pk=recording.pk).update(finished_at=finished)
        kept[(plan, days)] = recording
    # free: the setting's 7 days; pro: 14 (seeded); enterprise: 30.
    assert recordings_purge() == 2
    left = set(SessionRecording.objects.values_list("session_id", flat=True))
    assert left == {kept[("pro", 8)].pk, kept[("enterprise", 15)].pk}
    gone = kept[("free", 8)]
    assert not recording_dir(account_id=gone.account_id, session_id=gone.pk).exists()  # MP4 too


def test_an_entry_that_repeats_a_picture_is_a_frame_of_the_mp4_and_its_bytes_count_once(db, media, jpegs):
    """An action that changed nothing is an index entry pointing at the bytes already stored
    (workers/recorder.py): the video shows that picture from its time on, like any frame, and
    the recording's size counts the bytes once."""
    account = _account()
    base = 1_700_000_000_000.0
    ended_at = datetime.fromtimestamp((base + 3000) / 1000, tz=UTC)
    session = session_row(account, status="terminated", ended_at=ended_at, ended_reason="user")
    SessionRecording.objects.create(session=session, account=account, created_at=timezone.now())
    recorder = Recorder(account_id=account.pk, session_id=session.pk)
    recorder.offer(base64.b64encode(jpegs[0]).decode(), base, 321, 241)
    recorder.action_requested("act_1", base + 100, "html")
    recorder.action_finished("act_1", base + 500, "html")  # changed nothing: jpegs[0] again at 500
    recorder.action_requested("act_2", base + 900, "click")
    recorder.offer(base64.b64encode(jpegs[1]).decode(), base + 1000, 321, 241)
    recorder.close()
    frames = recording_frames(account_id=account.pk, session_id=session.pk)
    assert [f.at_ms - int(base) for f in frames] == [0, 500, 1000]
    assert frames[0].offset == frames[1].offset != frames[2].offset
    assert recording_finalize(session_id=session.pk, now=timezone.now()) == RecordingStatus.READY
    recording = SessionRecording.objects.get(pk=session.pk)
    assert recording.frame_count == 3 and recording.size_bytes == len(jpegs[0]) + len(jpegs[1])

    recording_export_request(recording=recording)
    assert recording_export_mp4(session_id=recording.pk) == "ready"
    probe = ffprobe(recording_dir(account_id=account.pk, session_id=session.pk) / MP4_FILE)
    assert probe["frames"] == 4
    assert [round(t, 3) for t in probe["times"]] == [0.0, 0.5, 1.0, 3.0]
