"""Job screenshots: stored through Django's storage for as long as the job's results live.

Action screenshots expire within the hour (sessions/screenshots.py); a job's results live for
days, so their screenshots sit in their own directory, are deleted with the job, and their URL
is signed when the results are read (valid for SCREENSHOT_URL_TTL_SECONDS from that read).
"""

from __future__ import annotations

import secrets

from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

_SALT = "browserfleet.job-screenshot"
_DIR = "job-screenshots"


def job_screenshot_save(png: bytes) -> str:
    """Store a PNG; return its name (kept on the item)."""
    name = secrets.token_hex(16)
    default_storage.save(f"{_DIR}/{name}.png", ContentFile(png))
    return name


def job_screenshot_token(name: str) -> str:
    return signing.TimestampSigner(salt=_SALT).sign(name)


def job_screenshot_path_of(token: str, *, max_age: int) -> str | None:
    try:
        name = signing.TimestampSigner(salt=_SALT).unsign(token, max_age=max_age)
    except signing.BadSignature:
        return None
    return f"{_DIR}/{name}.png"


def job_screenshots_delete(names: list[str]) -> None:
    for name in names:
        default_storage.delete(f"{_DIR}/{name}.png")
