"""An owner-match firewall rule: sandbox uids may open connections to the egress filter only.

Below Chromium nothing else stops a browser process that runs code of a page's choosing (an
escape from the renderer, or any process of a browser started with --no-sandbox) from opening
connections on the host: to Redis, PostgreSQL, another tenant's chromedriver, the cloud
metadata address. One nftables table per uid range (`inet browserfleet_sandbox_<base>`), whose
output chain accepts, for sockets owned by a uid of BROWSER_SANDBOX_UID_BASE ..
+UID_SPAN-1, only packets of connections already established (the worker's own connections to
the browser's chromedriver answer through them) and new TCP connections to the egress filter's
address and port; everything else such a uid sends is rejected. Other uids are not matched at
all. Chromium talks to chromedriver over a pipe (--remote-debugging-pipe), so no DevTools port
is left listening for anyone.

BROWSER_SANDBOX_FIREWALL: auto (install it where this process is root, `nft` is installed and
the kernel accepts the table; otherwise browsers start without it, logged once), on (no browser
without it), off (the default: with the rule on no DevTools port listens, so the screencast
and the live viewer cannot attach; docs/egress.md). The table is created once per host and left
in place (it matches only the sandbox range); `remove` deletes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import shutil
import socket
import subprocess
from pathlib import Path

from django.conf import settings

from workers.browser.errors import BrowserStartError

logger = logging.getLogger(__name__)

_installed: set[str] = set()
_warned: set[str] = set()


def table_name(base: int) -> str:
    return f"browserfleet_sandbox_{base}"


def ruleset(*, base: int, span: int, egress: list[str], port: int) -> str:
    """The nft script of the table (created in one transaction)."""
    allow = []
    for address in egress:
        family = "ip" if ipaddress.ip_address(address).version == 4 else "ip6"
        allow.append(f"    {family} daddr {address} tcp dport {port} accept")
    lines = [
        f"table inet {table_name(base)} {{",
        "  chain output {",
        "    type filter hook output priority 0; policy accept;",
        f"    meta skuid != {base}-{base + span - 1} accept",
        "    ct state established,related accept",
        *allow,
        "    reject",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _egress_addresses() -> list[str]:
    host = str(settings.BROWSER_EGRESS_HOST)
    infos = socket.getaddrinfo(host, int(settings.BROWSER_EGRESS_PORT), type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]).split("%", 1)[0] for info in infos})


def ensure(*, base: int, span: int) -> bool:
    """Install the rule for this uid range unless it is there; True when it is in force."""
    mode = settings.BROWSER_SANDBOX_FIREWALL
    table = table_name(base)
    if mode == "off" or os.geteuid() != 0:
        return False
    if table in _installed:
        return True
    reason = _install(table, base=base, span=span)
    if reason is None:
        _installed.add(table)
        return True
    if mode == "on":
        raise BrowserStartError(f"BROWSER_SANDBOX_FIREWALL=on but the rule cannot be installed: {reason}")
    if table not in _warned:
        _warned.add(table)
        logger.warning("browsers run without the sandbox firewall rule: %s", reason)
    return False


def _install(table: str, *, base: int, span: int) -> str | None:
    """None when the table is in place; else why not."""
    nft = shutil.which("nft") or next(
        (path for path in ("/usr/sbin/nft", "/sbin/nft") if Path(path).exists()), None
    )
    if nft is None:
        return "nft is not installed (Debian package nftables)"
    if not settings.BROWSER_EGRESS_ENABLED:
        return "the egress filter is off (BROWSER_EGRESS_ENABLED), so it would leave browsers no way out"
    lock_dir = Path(settings.BROWSER_SANDBOX_UID_DIR)
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(lock_dir / ".firewall.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            listed = subprocess.run(
                [nft, "list", "chain", "inet", table, "output"], capture_output=True, timeout=10, check=False
            )
            if listed.returncode == 0:
                return None
            try:
                egress = _egress_addresses()
            except OSError as exc:
                return f"the egress filter's address does not resolve ({exc})"
            script = ruleset(base=base, span=span, egress=egress, port=int(settings.BROWSER_EGRESS_PORT))
            done = subprocess.run(
                [nft, "-f", "-"], input=script.encode(), capture_output=True, timeout=10, check=False
            )
            if done.returncode != 0:
                return f"nft refused the table: {done.stderr.decode(errors='replace').strip()[:300]}"
            return None
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remove(*, base: int) -> None:
    """Delete the table of a uid range (tests; an operator moving the range)."""
    table = table_name(base)
    _installed.discard(table)
    nft = shutil.which("nft") or "/usr/sbin/nft"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([nft, "delete", "table", "inet", table], capture_output=True, timeout=10, check=False)
