"""Screenshots: stored through Django's storage API, served at unguessable, expiring URLs.

The URL carries a random name signed with a timestamp; it needs no API key (a model or an <img>
can fetch it) and stops working after SCREENSHOT_URL_TTL_SECONDS.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

_SALT = "browserfleet.screenshot"
_DIR = "screenshots"


def screenshot_save(png: bytes) -> str:
    """Store a PNG; return its signed token (what the URL carries)."""
    name = secrets.token_hex(16)
    default_storage.save(f"{_DIR}/{name}.png", ContentFile(png))
    return signing.TimestampSigner(salt=_SALT).sign(name)


def screenshot_path_of(token: str) -> str | None:
    """The storage path of a token's PNG, or None when the token is forged or expired."""
    try:
        name = signing.TimestampSigner(salt=_SALT).unsign(token, max_age=settings.SCREENSHOT_URL_TTL_SECONDS)
    except signing.BadSignature:
        return None
    return f"{_DIR}/{name}.png"


def screenshots_purge(*, older_than_seconds: int | None = None) -> int:
    """Delete stored screenshots whose URLs have expired; return how many."""
    age = older_than_seconds if older_than_seconds is not None else settings.SCREENSHOT_URL_TTL_SECONDS
    cutoff = timezone.now() - timedelta(seconds=age)
    try:
        _, files = default_storage.listdir(_DIR)
    except FileNotFoundError:
        return 0
    deleted = 0
    for filename in files:
        path = f"{_DIR}/{filename}"
        try:
            if default_storage.get_modified_time(path) < cutoff:
                default_storage.delete(path)
                deleted += 1
        except FileNotFoundError:
            continue
    return deleted
