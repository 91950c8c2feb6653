"""The worker's side of upstream proxies: the egress filter's route file of a local browser.

The filter tells browsers apart by the uid that owns their socket (workers/egress/clients.py);
each local browser runs as a sandbox uid leased for it alone (sandbox.py). So a browser whose
session has a proxy gets `EGRESS_ROUTES_DIR/uid-<uid>.json` (mode 0600, this process's user,
written whole and renamed into place: the filter never reads half a file), before its first
navigation: at the start, before chromedriver runs, or when a session claims a warm browser.
Every other start, and every end of a uid (workers/browser/local.py `end_uid`), removes the file,
so a uid leased again never inherits the last browser's proxy or credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

from workers.browser.sandbox import UidLeases


def routes_dir() -> Path | None:
    return Path(settings.EGRESS_ROUTES_DIR) if settings.EGRESS_ROUTES_DIR else None


def browser_uid(profile_dir: str) -> int | None:
    """The sandbox uid the local browser of `profile_dir` runs as (None: it has none of its own)."""
    if not profile_dir or os.geteuid() != 0:
        return None
    return UidLeases.configured().holder(profile_dir)


def routes_write(*, uid: int, document: dict[str, Any]) -> None:
    directory = routes_dir()
    if directory is None:
        raise OSError("EGRESS_ROUTES_DIR is not set")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".uid-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp makes it 0600
            json.dump(document, out)
        os.replace(temporary, directory / f"uid-{uid}.json")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def routes_remove(*, uid: int) -> None:
    directory = routes_dir()
    if directory is not None:
        with contextlib.suppress(FileNotFoundError):
            (directory / f"uid-{uid}.json").unlink()
