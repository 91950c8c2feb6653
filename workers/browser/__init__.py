"""Everything that talks to browsers. Nothing outside this package imports Selenium."""

from __future__ import annotations

from django.conf import settings

from workers.browser.base import BrowserBackend, Display
from workers.browser.errors import BrowserError, BrowserGone, BrowserStartError, TransientBrowserError
from workers.browser.grid import GridBackend
from workers.browser.local import LocalBackend

__all__ = [
    "BrowserBackend",
    "BrowserError",
    "BrowserGone",
    "BrowserStartError",
    "Display",
    "TransientBrowserError",
    "get_backend",
]


def get_backend(name: str | None = None) -> BrowserBackend:
    """The backend for new sessions (settings), or the one a session row names."""
    name = name or settings.BROWSER_BACKEND
    if name == "grid":
        return GridBackend()
    return LocalBackend()
