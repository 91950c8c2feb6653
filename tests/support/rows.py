"""Row builders for the fast tier: the rows a create (or a later state) leaves, written directly,
so that a test of what reads them needs no worker and no browser."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from sessions.models import BrowserSession


def session_row(
    account: Any,
    *,
    status: str = "starting",
    expires_in: float = 3600,
    idle_in: float | None = None,
    **fields: Any,
) -> BrowserSession:
    """A session of `account` as a create writes it (`starting`, no browser, no start queued),
    `expires_in` seconds from its end of life and, with `idle_in`, that far from its idle end.
    Any other column may be given."""
    now = timezone.now()
    values: dict[str, Any] = {
        "account": account,
        "status": status,
        "created_at": now,
        "last_activity_at": now,
        "expires_at": now + timedelta(seconds=expires_in),
        "idle_expires_at": None if idle_in is None else now + timedelta(seconds=idle_in),
        "idle_timeout_enabled": idle_in is not None,
        "max_lifetime_seconds": 3600,
        "inactivity_timeout_seconds": 120,
    }
    values.update(fields)
    return BrowserSession.objects.create(**values)
