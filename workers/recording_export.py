"""A recording's MP4 (`GET /v1/computers/{id}/recording?format=mp4`), encoded by ffmpeg on a
worker (the maintenance queue), never in a request.

The stored frames are JPEGs with the time each was painted (sessions/recordings.py); a page
sends a frame only when it changes, so the video has a variable frame rate: each frame is shown
from its own timestamp to the next one's, the last one until the session ended (the recording's
`duration_ms`). ffmpeg's concat demuxer takes exactly that: a list of files, each with its
duration. The concat demuxer drops the last entry's duration, so the last frame is listed once
more to close the video at the session's end (the MP4 has one frame more than the recording).
Frames are scaled and padded to the first frame's even size (H.264 in yuv420p wants even sides;
a resized window changes the frames' size mid-recording).

The outcome is written only by the holder of the export's claim; a failure (ffmpeg missing or
failing, the account's storage cap) is `failed` with a reason, and a worker that died leaves a
claim that runs out: the next request or Beat sends it again, at most three attempts in all.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings

from sessions.models import RecordingStatus, SessionRecording
from sessions.recordings import (
    MP4_FILE,
    recording_dir,
    recording_export_claim,
    recording_export_finish,
    recording_frames,
    recording_storage_room,
)

logger = logging.getLogger(__name__)


def _even(n: int) -> int:
    return max(2, n - n % 2)


def _encode(recording: SessionRecording, work: Path) -> Path:
    """The MP4 in `work`; raises RuntimeError with a reason a tenant may read."""
    account_id, session_id = recording.account_id, recording.session_id
    frames = recording_frames(account_id=account_id, session_id=session_id)[: recording.frame_count]
    if not frames:
        raise RuntimeError("The recording has no frame to encode.")
    source = recording_dir(account_id=account_id, session_id=session_id)
    end_ms = frames[0].at_ms + recording.duration_ms
    lines = ["ffconcat version 1.0"]
    # An entry repeating a picture (an action that changed nothing) points at bytes stored once:
    # one image file per offset, listed again for each entry.
    files: dict[int, str] = {}
    with open(source / "frames.jpgs", "rb") as jpegs:
        for n, frame in enumerate(frames):
            name = files.get(frame.offset)
            if name is None:
                name = files[frame.offset] = f"{len(files):06d}.jpg"
                jpegs.seek(frame.offset)
                (work / name).write_bytes(jpegs.read(frame.length))
            until = frames[n + 1].at_ms if n + 1 < len(frames) else max(end_ms, frame.at_ms + 1)
            # framerate: each image's timestamps in ms (image2's default, 1/25 s, would round
            # frames closer than 40 ms onto one another, and vfr would drop them).
            lines += [
                f"file '{name}'",
                "option framerate 1000",
                f"duration {max(1, until - frame.at_ms) / 1000:.3f}",
            ]
    lines += [f"file '{files[frames[-1].offset]}'", "option framerate 1000"]
    (work / "list.ffconcat").write_text("\n".join(lines) + "\n")
    width = _even(frames[0].width or 2)
    height = _even(frames[0].height or 2)
    video = work / "out.mp4"
    command = [
        settings.RECORDING_FFMPEG_BINARY,
        *("-nostdin", "-hide_banner", "-loglevel", "error", "-y"),
        *("-f", "concat", "-safe", "0", "-i", "list.ffconcat"),
        "-vf",
        f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,format=yuv420p",
        *("-fps_mode", "vfr", "-c:v", "libx264", "-preset", "veryfast", "-crf", "28"),
        # One thread: the maintenance pool shares its host with browsers and actions.
        *("-threads", "1", "-filter_threads", "1"),
        *("-video_track_timescale", "1000", "-movflags", "+faststart", "out.mp4"),
    ]
    try:
        done = subprocess.run(
            command,
            cwd=work,
            capture_output=True,
            timeout=settings.RECORDING_EXPORT_TIMEOUT_SECONDS,
        )
    except FileNotFoundError:
        raise RuntimeError("ffmpeg is not installed on the worker (the `ffmpeg` package).") from None
    except PermissionError:
        raise RuntimeError("ffmpeg cannot be run on the worker.") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"ffmpeg took longer than {settings.RECORDING_EXPORT_TIMEOUT_SECONDS} s."
        ) from None
    if done.returncode != 0 or not video.exists() or video.stat().st_size == 0:
        # Its message names our paths: logged for the operator, not shown to the tenant.
        logger.warning(
            "ffmpeg failed on the recording of %s (exit %s): %s",
            session_id,
            done.returncode,
            done.stderr.decode(errors="replace")[-2000:],
        )
        raise RuntimeError(f"ffmpeg failed (exit status {done.returncode}).")
    return video


def recording_export_mp4(*, session_id: str) -> str | None:
    """Encode the recording's MP4 if its export is this call's to do. Returns the status it set
    (`ready`, `failed`), None if it was not this call's. Safe to run twice at once."""
    deadline = recording_export_claim(session_id=session_id)
    if deadline is None:
        return None
    recording = SessionRecording.objects.filter(pk=session_id, status=RecordingStatus.READY).first()
    if recording is None:  # purged meanwhile
        return None
    target = recording_dir(account_id=recording.account_id, session_id=session_id) / MP4_FILE
    try:
        with tempfile.TemporaryDirectory(prefix="bf-mp4-", dir=target.parent) as tmp:
            video = _encode(recording, Path(tmp))
            size = video.stat().st_size
            room = recording_storage_room(account_id=recording.account_id, exclude_session_id=session_id)
            if size > room:
                raise RuntimeError(
                    f"The account's recording storage cap would be exceeded (the MP4 is {size} bytes,"
                    f" {max(0, room)} are left)."
                )
            os.replace(video, target)
    except RuntimeError as exc:
        written = recording_export_finish(session_id=session_id, deadline=deadline, failure_reason=str(exc))
        return "failed" if written else None
    except OSError as exc:
        logger.warning("MP4 export of %s: %r", session_id, exc)
        written = recording_export_finish(
            session_id=session_id, deadline=deadline, failure_reason="The video could not be written."
        )
        return "failed" if written else None
    # A late worker (its claim ran out and another took it) leaves the outcome to that one; the
    # file is an encode of the same frames either way.
    written = recording_export_finish(session_id=session_id, deadline=deadline, size_bytes=size)
    return "ready" if written else None
