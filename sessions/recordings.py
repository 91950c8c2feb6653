"""Session recordings (create option `record`; docs/logs-and-recordings.md).

While the session lives, its host's screencast caster writes the frames DevTools sends
(workers/screencast.py, workers/recorder.py), at most RECORDING_FPS a second, into two files
under `MEDIA_ROOT/recordings/<account>/<session>/`: `frames.jpgs` (the JPEGs one after the other)
and `index.tsv` (offset, length, timestamp in ms, width, height of each, one line a frame, written
after its bytes). Nothing else is needed to replay it, so whatever was written before a crash of
the browser or of the worker is a valid recording.

Status: `recording` while the session lives; once it ended, the sweep (every
SESSION_SWEEP_INTERVAL_SECONDS, on the maintenance queue) claims it (`processing`, with a
deadline), reads the index and sets `ready` (frames, duration) or `failed` (a reason). A claim
whose finalizer died runs out and is claimed again; after _MAX_ATTEMPTS it is `failed`. So a
recording never stays `recording` or `processing` once its session ended.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import signing
from django.db.models import F, Q
from django.utils import timezone

from project.exceptions import NotFound
from sessions.models import BrowserSession, RecordingStatus, SessionRecording, SessionStatus

FRAMES_FILE = "frames.jpgs"
INDEX_FILE = "index.tsv"
TRUNCATED_FILE = "truncated"
_CLAIM_SECONDS = 60
_MAX_ATTEMPTS = 3
# A session's caster notices its end within a poll; its last frames are in the files by then.
_SETTLE_SECONDS = 2
_SALT = "browserfleet.sessions.recording-replay"


def recording_dir(*, account_id: int, session_id: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "recordings" / str(account_id) / session_id


def recording_open(*, session: BrowserSession, now: datetime) -> SessionRecording:
    """The recording row of a session created with `record` (in the create's transaction)."""
    if settings.BROWSER_BACKEND != "local":
        # The screencast is cast for local browsers only (docs/streams.md): say so at once.
        return SessionRecording.objects.create(
            session=session,
            account_id=session.account_id,
            created_at=now,
            status=RecordingStatus.FAILED,
            failure_reason="Recordings are made for browsers of the local backend only.",
            finished_at=now,
        )
    return SessionRecording.objects.create(session=session, account_id=session.account_id, created_at=now)


@dataclass(frozen=True)
class Frame:
    offset: int
    length: int
    at_ms: int
    width: int
    height: int


def recording_frames(*, account_id: int, session_id: str) -> list[Frame]:
    """The frames the index lists whose bytes are all in the frames file (a line or a frame torn
    by a crash is left out)."""
    folder = recording_dir(account_id=account_id, session_id=session_id)
    try:
        size = (folder / FRAMES_FILE).stat().st_size
        lines = (folder / INDEX_FILE).read_text().splitlines()
    except OSError:
        return []
    frames: list[Frame] = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) != 5:
            continue
        try:
            frame = Frame(*(int(p) for p in parts))
        except ValueError:
            continue
        if frame.offset + frame.length <= size:
            frames.append(frame)
    return frames


@functools.lru_cache(maxsize=32)
def recording_frames_settled(*, account_id: int, session_id: str, frame_count: int) -> tuple[Frame, ...]:
    """A ready recording's frames (they never change once counted), read once per process: a
    replay asks for one frame after another."""
    return tuple(recording_frames(account_id=account_id, session_id=session_id)[:frame_count])


def recording_frame_bytes(*, account_id: int, session_id: str, frame: Frame) -> bytes:
    folder = recording_dir(account_id=account_id, session_id=session_id)
    with open(folder / FRAMES_FILE, "rb") as handle:
        handle.seek(frame.offset)
        return handle.read(frame.length)


def _claimable(now: datetime) -> Q:
    """On the recording's own columns only: a conditional UPDATE whose condition reads another
    table (a join becomes a subquery) is not re-checked against the row it waited for, and two
    finalizers would both claim it."""
    return (
        Q(status=RecordingStatus.RECORDING)
        | Q(status=RecordingStatus.PROCESSING, claimed_until__lt=now)
        | Q(status=RecordingStatus.PROCESSING, claimed_until__isnull=True)
    )


def _settled_sessions(now: datetime) -> Q:
    return Q(
        session__status=SessionStatus.TERMINATED,
        session__ended_at__lt=now - timedelta(seconds=_SETTLE_SECONDS),
    )


def recording_finalize(*, session_id: str, now: datetime | None = None) -> str | None:
    """Claim an ended session's unfinished recording and settle it: `ready` with its frames, or
    `failed` with a reason. Returns the status it set, None if it was not this call's to settle
    (still live, already settled, or claimed by another finalizer). Safe to run twice at once."""
    now = now or timezone.now()
    # An ended session stays ended: checking it before the claim is no race.
    if not BrowserSession.objects.filter(
        pk=session_id,
        status=SessionStatus.TERMINATED,
        ended_at__lt=now - timedelta(seconds=_SETTLE_SECONDS),
    ).exists():
        return None
    deadline = now + timedelta(seconds=_CLAIM_SECONDS)
    claimed = (
        SessionRecording.objects.filter(_claimable(now), pk=session_id)
        .filter(Q(attempts__lt=_MAX_ATTEMPTS) | Q(status=RecordingStatus.RECORDING))
        .update(
            status=RecordingStatus.PROCESSING,
            claimed_until=deadline,
            attempts=F("attempts") + 1,
        )
    )
    if not claimed:
        exhausted = SessionRecording.objects.filter(
            _claimable(now), pk=session_id, attempts__gte=_MAX_ATTEMPTS
        ).update(
            status=RecordingStatus.FAILED,
            failure_reason=f"Processing failed {_MAX_ATTEMPTS} times.",
            finished_at=now,
            claimed_until=None,
        )
        return RecordingStatus.FAILED if exhausted else None
    recording = SessionRecording.objects.select_related("session").get(pk=session_id)
    frames = recording_frames(account_id=recording.account_id, session_id=session_id)
    folder = recording_dir(account_id=recording.account_id, session_id=session_id)
    values: dict[str, Any] = {"finished_at": timezone.now(), "claimed_until": None}
    if not frames:
        values.update(
            status=RecordingStatus.FAILED,
            failure_reason=(
                "No frame was recorded (the session ended before its page was painted, or its "
                "browser's host was lost before it wrote one)."
            ),
        )
    else:
        ended = recording.session.ended_at
        last = frames[-1].at_ms
        # The last frame shows until the session ended (a still page sends no new frames).
        end_ms = max(last, int(ended.timestamp() * 1000)) if ended else last
        end_ms = min(end_ms, frames[0].at_ms + settings.RECORDING_MAX_SECONDS * 1000)
        values.update(
            status=RecordingStatus.READY,
            frame_count=len(frames),
            duration_ms=max(0, end_ms - frames[0].at_ms),
            size_bytes=sum(f.length for f in frames),
            truncated=(folder / TRUNCATED_FILE).exists(),
        )
    # Only the claim's holder writes the outcome (a late finalizer whose claim ran out does not).
    written = SessionRecording.objects.filter(
        pk=session_id, status=RecordingStatus.PROCESSING, claimed_until=deadline
    ).update(**values)
    return str(values["status"]) if written else None


def recordings_finalize_due(*, now: datetime | None = None, batch_size: int = 50) -> int:
    """Settle the unfinished recordings of ended sessions (Beat, every sweep). Returns how many."""
    now = now or timezone.now()
    due = list(
        SessionRecording.objects.filter(_claimable(now), _settled_sessions(now)).values_list(
            "session_id", flat=True
        )[:batch_size]
    )
    return sum(1 for session_id in due if recording_finalize(session_id=session_id, now=now))


def recordings_purge(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Delete recordings (files and row) finished more than RECORDING_RETENTION_DAYS ago."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.RECORDING_RETENTION_DAYS)
    expired = list(
        SessionRecording.objects.filter(
            status__in=[RecordingStatus.READY, RecordingStatus.FAILED], finished_at__lt=cutoff
        ).values_list("session_id", "account_id")[:batch_size]
    )
    for session_id, account_id in expired:
        shutil.rmtree(recording_dir(account_id=account_id, session_id=session_id), ignore_errors=True)
        SessionRecording.objects.filter(pk=session_id).delete()
    return len(expired)


# Replay links: signed like the live viewer's, naming the session, its account and the expiry.


def recording_replay_token(*, recording: SessionRecording) -> tuple[str, datetime]:
    expires_at = timezone.now() + timedelta(seconds=settings.RECORDING_REPLAY_TTL_SECONDS)
    payload = {"s": recording.session_id, "a": recording.account_id, "e": int(expires_at.timestamp())}
    return signing.dumps(payload, salt=_SALT), expires_at


def recording_replay_resolve(token: str) -> SessionRecording:
    """The ready recording a replay token grants; 404 if forged, expired or not ready."""
    gone = NotFound("This replay does not exist or its link has expired.", code="replay_not_found")
    try:
        payload: dict[str, Any] = signing.loads(token, salt=_SALT)
    except signing.BadSignature:
        raise gone from None
    if int(payload["e"]) <= timezone.now().timestamp():
        raise gone
    recording = (
        SessionRecording.objects.filter(
            pk=payload["s"], account_id=payload["a"], status=RecordingStatus.READY
        )
        .select_related("session")
        .first()
    )
    if recording is None:
        raise gone
    return recording
