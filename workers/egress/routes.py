"""Where the filter learns each browser's upstream proxy rules: one file per sandbox uid.

EGRESS_ROUTES_DIR (unset: no browser has an upstream). On a local host every browser runs as a
leased uid of its own (workers/browser/sandbox.py) and the filter knows a connection's uid
(workers/egress/clients.py), so the worker that starts a browser (or changes its proxy) writes
`uid-<uid>.json` there and removes it at stop:

    {"rules": [{"server": "http://host:port" | "direct", "username": "...", "password": "...",
                "domain_pattern": "*.example.com", "name": "pool:de-1"}],
     "meter": "<session or job browser id>", "report": "<job browser id>"}

`meter` names whose bytes the `metered` rules count under (metering.py); `report`, when given,
where a failure of the upstream is counted (`proxy_errors_key`, read by the job runner).

Every browser that runs as a sandbox uid has a file, `{"rules": []}` when it goes direct: the
filter refuses a sandbox uid without one (`sandbox_uids`), so a route removed by mistake, or a
browser whose worker wrote none, never goes direct. The file of a uid is written only by the
worker that holds the uid's lease and removed only while it still holds it
(workers/browser/sandbox.py `UidLeases.release`), so one browser's end never takes the route
of the next browser leased that uid.

The filter reads a file again when it changed (mtime and size), on the next new connection. It
only trusts files owned by its own uid and writable by no one else (the directory is root's,
0700; a browser's uid could otherwise choose its own route). A file that cannot be read as
rules refuses that browser's connections (`proxy_error`): a browser that was meant to go
through a proxy never silently goes direct. Credentials never appear in a log line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from workers.egress.upstream import ProxyFailed, Rule, Upstream

logger = logging.getLogger(__name__)


# How often the filter looks for changed route files (to close the connections of their uid).
ROUTES_POLL_SECONDS = 0.2


def parse_rules(document: Any) -> list[Rule]:
    """Rules from the file's JSON; ValueError (naming no credential) when malformed."""
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise ValueError("not {'rules': [...]}")
    meter = document.get("meter") or ""
    report = document.get("report") or ""
    if not isinstance(meter, str) or not isinstance(report, str):
        raise ValueError("a meter and a report are strings")
    rules = []
    for item in document["rules"]:
        if not isinstance(item, dict) or not isinstance(item.get("server"), str):
            raise ValueError("a rule without a server")
        pattern = str(item.get("domain_pattern") or "")
        if item["server"] == "direct":
            rules.append(Rule(None, pattern))
            continue
        metered = meter if item.get("metered") is True else ""
        fallbacks = item.get("fallbacks") or []
        if not isinstance(fallbacks, list) or not all(isinstance(f, dict) for f in fallbacks):
            raise ValueError("fallbacks are a list of servers")
        upstream = Upstream.parse(
            item["server"],
            username=str(item.get("username") or ""),
            password=str(item.get("password") or ""),
            name=str(item.get("name") or ""),
            meter=metered,
        )
        upstream = dataclasses.replace(upstream, report=report)
        if fallbacks:
            others = tuple(
                Upstream.parse(
                    str(f.get("server") or ""),
                    username=str(f.get("username") or ""),
                    password=str(f.get("password") or ""),
                    name=str(f.get("name") or ""),
                    meter=metered,
                )
                for f in fallbacks
            )
            upstream = dataclasses.replace(upstream, fallbacks=others)
        rules.append(Rule(upstream, pattern))
    return rules


# What `_rules` answers for a uid without a file (an identity, never a browser's rules).
_MISSING: list[Rule] = []


class DirectoryRoutes:
    """`sandbox_uids`: the uids the host's workers lease to browsers. Each such browser gets a file
    before it runs (`{"rules": []}` when it goes direct), so a connection from one of these uids
    without a file is refused: a route that went missing (or a browser started around the worker)
    never means "direct". Other uids (a worker that runs browsers as itself) have no file and go
    direct, as without this directory."""

    def __init__(self, directory: Path, *, sandbox_uids: range | None = None) -> None:
        self.directory = Path(directory)
        self.sandbox_uids = sandbox_uids or range(0)
        self._cache: dict[str, tuple[tuple[int, int], list[Rule] | None]] = {}
        self._seen: dict[str, tuple[int, int]] | None = None

    def _stamps(self) -> dict[str, tuple[int, int]]:
        stamps = {}
        for path in self.directory.glob("uid-*.json"):
            try:
                stat = path.stat()
                stamps[f"uid:{int(path.name[4:-5])}"] = (stat.st_mtime_ns, stat.st_size)
            except (OSError, ValueError):
                continue
        return stamps

    def changes(self) -> dict[str, float]:
        """Client keys whose file changed, appeared or went since the last call (none the first),
        each with when (the file's mtime; now for one that went)."""
        stamps = self._stamps()
        seen, self._seen = self._seen, stamps
        if seen is None:
            return {}
        now = time.time()
        return {
            key: stamps[key][0] / 1e9 if key in stamps else now
            for key in stamps.keys() | seen.keys()
            if stamps.get(key) != seen.get(key)
        }

    def path(self, uid: int) -> Path:
        return self.directory / f"uid-{uid}.json"

    def __call__(self, client: str) -> list[Rule]:
        if client.startswith("unknown:"):
            # A loopback peer whose uid the kernel did not tell: if any browser here has an
            # upstream (or a route that cannot be read), this may be it, and it must not go direct.
            if any(self._rules(path, path.name[:-5].replace("-", ":")) != [] for path in self._files()):
                raise ProxyFailed("this connection's browser cannot be told")
            return []
        if not client.startswith("uid:"):
            return []
        uid = int(client[4:])
        rules = self._rules(self.path(uid), client)
        if rules is None:
            raise ProxyFailed("this browser's proxy settings cannot be read")
        if rules is _MISSING:
            if uid in self.sandbox_uids:
                raise ProxyFailed("this browser has no route on this host")
            return []
        return rules

    def _files(self) -> list[Path]:
        return list(self.directory.glob("uid-*.json"))

    def _rules(self, path: Path, client: str) -> list[Rule] | None:
        """The rules of `path` (cached by mtime and size); None when it cannot be read; _MISSING
        when there is no such file."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._cache.pop(client, None)
            return _MISSING
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(client)
        if cached is None or cached[0] != stamp:
            cached = (stamp, self._load(path, stat))
            self._cache[client] = cached
        return cached[1]

    @staticmethod
    def _load(path: Path, stat: os.stat_result) -> list[Rule] | None:
        if stat.st_uid != os.geteuid() or stat.st_mode & 0o022:
            logger.warning("ignoring %s: not owned by this user alone", path.name)
            return None
        try:
            return parse_rules(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            logger.warning("ignoring %s: %s", path.name, exc)
            return None
