"""The worker's side of upstream proxies: the egress filter's route file of a local browser.

The filter tells browsers apart by the uid that owns their socket (workers/egress/clients.py);
each local browser runs as a sandbox uid leased for it alone (sandbox.py). So a browser whose
session has a proxy gets `EGRESS_ROUTES_DIR/uid-<uid>.json` (mode 0600, this process's user,
written whole and renamed into place: the filter never reads half a file), before its first
navigation: at the start, before chromedriver runs, or when a session claims a warm browser.
Every other start writes DIRECT (`{"rules": []}`): the filter refuses a sandbox uid without a
file, so a route that went missing never means "direct". The end of a uid (workers/browser/local.py
`end_uid`, run while the uid's lease is still held) removes the file, so a uid leased again never
inherits the last browser's proxy or credentials.
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


# The route of a browser that goes direct: the filter refuses a sandbox uid without a file.
DIRECT: dict[str, Any] = {"rules": []}


def routes_start(*, uid: int, document: dict[str, Any] | None) -> None:
    """The route a browser starts with, written before anything runs as its uid: its session's
    proxies, or DIRECT (nothing when this host has no routes directory: no proxies at all)."""
    if document is None and routes_dir() is None:
        return
    routes_write(uid=uid, document=DIRECT if document is None else document)


def routes_remove(*, uid: int) -> None:
    directory = routes_dir()
    if directory is not None:
        with contextlib.suppress(FileNotFoundError):
            (directory / f"uid-{uid}.json").unlink()
