"""Session recordings (create option `record`; docs/logs-and-recordings.md).

While the session lives, its host's screencast caster writes the frames DevTools sends
(workers/screencast.py, workers/recorder.py), at most RECORDING_FPS a second and one at each
action's finish, into two files under `MEDIA_ROOT/recordings/<account>/<session>/`: `frames.jpgs`
(the JPEGs one after the other) and `index.tsv` (offset, length, timestamp in ms, width, height of
each, one line a frame, written after its bytes; a line repeating the last picture points at its
bytes again, so a recording's size counts each offset once). Nothing else is needed to replay
it, so whatever was written before a crash of the browser or of the worker is a valid recording.

Status: `recording` while the session lives; once it ended, the sweep (every
SESSION_SWEEP_INTERVAL_SECONDS, on the maintenance queue) claims it (`processing`, with a
deadline), reads the index and sets `ready` (frames, duration) or `failed` (a reason). A claim
whose finalizer died runs out and is claimed again; after _MAX_ATTEMPTS it is `failed`. So a
recording never stays `recording` or `processing` once its session ended.
"""

from __future__ import annotations

import bisect
import functools
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import signing
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Account
from project.exceptions import Busy, Conflict, NotFound
from sessions import dispatch
from sessions.models import BrowserSession, ExportStatus, RecordingStatus, SessionRecording, SessionStatus

FRAMES_FILE = "frames.jpgs"
INDEX_FILE = "index.tsv"
TRUNCATED_FILE = "truncated"
MP4_FILE = "recording.mp4"
_CLAIM_SECONDS = 60
_MAX_ATTEMPTS = 3
# A session's caster notices its end within a poll; its last frames are in the files by then.
_SETTLE_SECONDS = 2
_SALT = "browserfleet.sessions.recording-replay"


def recording_dir(*, account_id: int, session_id: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "recordings" / str(account_id) / session_id


def recording_storage_cap(*, account_id: int) -> int:
    """The bytes the account's recordings may hold: its plan's, else the service's default."""
    plan_cap = Account.objects.filter(pk=account_id).values_list("plan__recording_storage_bytes", flat=True)
    cap = plan_cap.first()
    return int(cap) if cap is not None else settings.RECORDING_ACCOUNT_STORAGE_BYTES


def recording_storage_used(*, account_id: int, exclude_session_id: str = "") -> int:
    """The bytes the account's recordings hold: the settled ones' frames and MP4s as counted, the
    unsettled ones' frames as on disk (`exclude_session_id`: a live recording counting itself)."""
    settled = SessionRecording.objects.filter(
        account_id=account_id, status__in=[RecordingStatus.READY, RecordingStatus.FAILED]
    ).aggregate(total=Sum(F("size_bytes") + F("mp4_size_bytes")))["total"]
    used = int(settled or 0)
    unsettled = (
        SessionRecording.objects.filter(
            account_id=account_id, status__in=[RecordingStatus.RECORDING, RecordingStatus.PROCESSING]
        )
        .exclude(pk=exclude_session_id)
        .values_list("session_id", flat=True)
    )
    for session_id in unsettled:
        try:
            used += (recording_dir(account_id=account_id, session_id=session_id) / FRAMES_FILE).stat().st_size
        except OSError:
            continue
    return used


def recording_storage_room(*, account_id: int, exclude_session_id: str = "") -> int:
    """Bytes the account's recordings may still write (<= 0: its storage cap is reached)."""
    return recording_storage_cap(account_id=account_id) - recording_storage_used(
        account_id=account_id, exclude_session_id=exclude_session_id
    )


def storage_full_reason(*, account_id: int) -> str:
    cap = recording_storage_cap(account_id=account_id)
    return f"The account's recording storage cap ({cap} bytes, its plan's) is reached."


def recording_open(*, session: BrowserSession, now: datetime) -> SessionRecording:
    """The recording row of a session created with `record` (in the create's transaction)."""
    if recording_storage_room(account_id=session.account_id) <= 0:
        # Said at once, rather than a recording that stops at its first frame.
        return SessionRecording.objects.create(
            session=session,
            account_id=session.account_id,
            created_at=now,
            status=RecordingStatus.FAILED,
            failure_reason=storage_full_reason(account_id=session.account_id),
            finished_at=now,
        )
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


def recording_frames_bytes(frames: list[Frame] | tuple[Frame, ...]) -> int:
    """The bytes the frames take: an entry repeating a picture points at bytes already stored
    (workers/recorder.py), counted once."""
    return sum({f.offset: f.length for f in frames}.values())


def frame_at_or_after(times: list[int], at_ms: int) -> int | None:
    """The number of the first frame at or after `at_ms`, given the frames' times (an action's
    frame: the recorder writes one at or after each action's finish), None if there is none."""
    n = bisect.bisect_left(times, at_ms)
    return n if n < len(times) else None


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


def _truncated_reason(folder: Path) -> str:
    try:
        return (folder / TRUNCATED_FILE).read_text()[:300] or "A recording cap was reached."
    except OSError:
        return ""


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
            size_bytes=recording_frames_bytes(frames),
            truncated=(folder / TRUNCATED_FILE).exists(),
            truncated_reason=_truncated_reason(folder),
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
    """Delete recordings (frames, MP4 and row) finished more than their account's plan's
    `recording_retention_days` ago (RECORDING_RETENTION_DAYS for a plan that does not say)."""
    now = now or timezone.now()
    days = Coalesce(F("account__plan__recording_retention_days"), Value(settings.RECORDING_RETENTION_DAYS))
    cutoff = ExpressionWrapper(
        Value(now) - ExpressionWrapper(days * timedelta(days=1), output_field=DurationField()),
        output_field=DateTimeField(),
    )
    expired = list(
        SessionRecording.objects.alias(cutoff=cutoff)
        .filter(status__in=[RecordingStatus.READY, RecordingStatus.FAILED], finished_at__lt=F("cutoff"))
        .exclude(mp4_status=ExportStatus.PROCESSING, mp4_claimed_until__gt=now)  # an encode under way
        .values_list("session_id", "account_id")[:batch_size]
    )
    for session_id, account_id in expired:
        shutil.rmtree(recording_dir(account_id=account_id, session_id=session_id), ignore_errors=True)
        SessionRecording.objects.filter(pk=session_id).delete()
    return len(expired)


# MP4 export (`?format=mp4`): made once, in the background, by workers/recording_export.py.

_MAX_EXPORT_ATTEMPTS = 3
# An export asked for but not claimed by a worker this long after is sent again (a lost message).
_EXPORT_QUEUED_SECONDS = 60
EXPORT_RETRY_AFTER_SECONDS = 5


def _export_claim_seconds() -> int:
    # Above ffmpeg's own time limit: a claim runs out only when its worker died.
    return settings.RECORDING_EXPORT_TIMEOUT_SECONDS + 60


def _export_stale(now: datetime) -> Q:
    return Q(mp4_status=ExportStatus.PROCESSING) & (
        Q(mp4_claimed_until__lt=now)
        | Q(
            mp4_claimed_until__isnull=True,
            mp4_requested_at__lt=now - timedelta(seconds=_EXPORT_QUEUED_SECONDS),
        )
    )


def recording_export_request(*, recording: SessionRecording, now: datetime | None = None) -> SessionRecording:
    """Ask for the ready recording's MP4: the first call queues it (`processing`); a later one
    answers where it stands, and sends again an export whose message or worker was lost.
    409 while the recording is not ready (retryable) or when it failed (final)."""
    now = now or timezone.now()
    if recording.status in (RecordingStatus.RECORDING, RecordingStatus.PROCESSING):
        raise Busy(
            "The recording is not ready yet (the session must end first).",
            code="recording_not_ready",
            retry_after=EXPORT_RETRY_AFTER_SECONDS,
        )
    if recording.status == RecordingStatus.FAILED:
        raise Conflict(f"The recording failed: {recording.failure_reason}", code="recording_failed")
    pk = recording.session_id
    asked = SessionRecording.objects.filter(pk=pk, mp4_status=ExportStatus.NONE).update(
        mp4_status=ExportStatus.PROCESSING, mp4_requested_at=now
    )
    if not asked:  # queued or encoding: sent again only if its message or worker was lost
        asked = SessionRecording.objects.filter(_export_stale(now), pk=pk).update(
            mp4_requested_at=now, mp4_claimed_until=None
        )
    if asked:
        dispatch.recording_export(pk)
    return SessionRecording.objects.get(pk=pk)


def recording_export_claim(*, session_id: str, now: datetime | None = None) -> datetime | None:
    """Claim a queued (or abandoned) export for this worker: its claim's deadline, or None when it
    is not this call's (already claimed, finished, or failed after _MAX_EXPORT_ATTEMPTS)."""
    now = now or timezone.now()
    deadline = now + timedelta(seconds=_export_claim_seconds())
    claimable = Q(mp4_status=ExportStatus.PROCESSING) & (
        Q(mp4_claimed_until__isnull=True) | Q(mp4_claimed_until__lt=now)
    )
    claimed = SessionRecording.objects.filter(
        claimable, pk=session_id, mp4_attempts__lt=_MAX_EXPORT_ATTEMPTS
    ).update(mp4_claimed_until=deadline, mp4_attempts=F("mp4_attempts") + 1)
    if claimed:
        return deadline
    SessionRecording.objects.filter(claimable, pk=session_id, mp4_attempts__gte=_MAX_EXPORT_ATTEMPTS).update(
        mp4_status=ExportStatus.FAILED,
        mp4_failure_reason=f"The export failed {_MAX_EXPORT_ATTEMPTS} times.",
        mp4_finished_at=now,
        mp4_claimed_until=None,
    )
    return None


def recording_export_finish(
    *, session_id: str, deadline: datetime, size_bytes: int = 0, failure_reason: str = ""
) -> bool:
    """Write the export's outcome, if this claim still holds it (a late worker does not)."""
    values: dict[str, Any] = {"mp4_finished_at": timezone.now(), "mp4_claimed_until": None}
    if failure_reason:
        values.update(mp4_status=ExportStatus.FAILED, mp4_failure_reason=failure_reason[:300])
    else:
        values.update(mp4_status=ExportStatus.READY, mp4_size_bytes=size_bytes)
    return bool(
        SessionRecording.objects.filter(
            pk=session_id, mp4_status=ExportStatus.PROCESSING, mp4_claimed_until=deadline
        ).update(**values)
    )


def recording_exports_stale(*, now: datetime | None = None, batch_size: int = 50) -> list[str]:
    """Exports whose message or worker was lost (Beat sends them again; the claim decides)."""
    now = now or timezone.now()
    stale = list(
        SessionRecording.objects.filter(_export_stale(now)).values_list("session_id", flat=True)[:batch_size]
    )
    # Queued again: sent again only if it is still not taken _EXPORT_QUEUED_SECONDS from now.
    SessionRecording.objects.filter(_export_stale(now), pk__in=stale).update(
        mp4_requested_at=now, mp4_claimed_until=None
    )
    return stale


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
