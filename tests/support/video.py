"""What ffprobe (Debian's ffmpeg package) reads of a video: its first video stream's codec, size,
decoded frame count and frame times, and the container's duration."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0"),
            *("-show_entries", "stream=width,height,nb_read_frames,codec_name:format=duration"),
            *("-of", "json", str(path)),
        ],
        check=True,
        capture_output=True,
    ).stdout
    probe = json.loads(out)
    stream = probe["streams"][0]
    times = subprocess.run(
        [
            *("ffprobe", "-v", "error", "-select_streams", "v:0"),
            *("-show_entries", "frame=pts_time", "-of", "json", str(path)),
        ],
        check=True,
        capture_output=True,
    ).stdout
    return {
        "codec": stream["codec_name"],
        "size": (int(stream["width"]), int(stream["height"])),
        "frames": int(stream["nb_read_frames"]),
        "seconds": float(probe["format"]["duration"]),
        "times": [float(f["pts_time"]) for f in json.loads(times)["frames"]],
    }
