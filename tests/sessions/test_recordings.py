"""Recordings without a browser: the recorder's sampling and caps, the finalize that always
settles a recording (ready or failed, also for a torn file or none, also when claimed by many at
once or left by a dead finalizer), and the retention purge (database and files only)."""

from __future__ import annotations

import base64
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Plan
from accounts.plans import seed_plans
from accounts.services import account_create
from sessions.models import RecordingStatus, SessionRecording
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


def _record(account_id: int, session_id: str, stamps_ms: list[float]) -> Recorder:
    recorder = Recorder(account_id=account_id, session_id=session_id)
    for stamp in stamps_ms:
        recorder.offer(base64.b64encode(JPEG).decode(), stamp, 16, 9)
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
    assert recording.frame_count == 2 and recording.size_bytes == 2 * len(JPEG)
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
