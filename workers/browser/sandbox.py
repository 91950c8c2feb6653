"""Who a local browser runs as, and whether Chromium's sandbox can start (BROWSER_SANDBOX).

Chromium refuses its sandbox as root, and its sandbox needs user namespaces (Debian's Chromium
has no setuid helper). So a worker running as root starts each session's chromedriver and
Chromium as an unprivileged uid of their own, owning the session's directory (mode 0700); a
worker that is not root runs them as itself. The uid is leased from a per-host free list
(`UidLeases`, BROWSER_SANDBOX_UID_DIR: one file per uid in use, naming its browser), so no two
live browsers ever share one (they did: the uid was sha256(id) mod 50000, about a 9 % chance of
a shared uid among 100 browsers, and with it each other's profile). Uids are handed out round
the range (BROWSER_SANDBOX_UID_BASE, UID_SPAN of them), so a freed uid is reused as late as
possible; at stop everything still running as the uid is killed and what it left in /tmp
removed (workers/browser/local.py) before the lease goes back. Then, if that uid can create a
user namespace, Chromium starts with its sandbox (renderers in their own namespaces under
seccomp-bpf); if not, with --no-sandbox.

Each start probes this for real (a shell as that uid, which enters the session's directory and
runs `unshare --user true`, a few milliseconds): the answer depends on the kernel
(user.max_user_namespaces, kernel.unprivileged_userns_clone on older Debian kernels, AppArmor's
kernel.apparmor_restrict_unprivileged_userns on Ubuntu), on seccomp filters of a container
runtime, and on whether the uid can reach BROWSER_PROFILE_ROOT.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from workers.browser import firewall
from workers.browser.errors import BrowserStartError
from workers.egress import SANDBOX_UID_SPAN

# How many uids sessions are spread over, from BROWSER_SANDBOX_UID_BASE (the filter knows it too).
UID_SPAN = SANDBOX_UID_SPAN

_PROBE = 'cd "$1" || exit 97; unshare --user true 2>/dev/null || exit 98'
_CANNOT_REACH, _NO_USERNS = 97, 98


@dataclass(frozen=True)
class SandboxPlan:
    uid: int | None  # run chromedriver and Chromium as this uid (None: as this process)
    sandbox: bool  # start Chromium with its sandbox
    firewall: bool = False  # the uid may connect to the egress filter only (firewall.py)


class UidLeases:
    """A per-host free list of sandbox uids, shared by every worker process of the host.

    One file per leased uid in `directory`, named by the uid and holding the browser's name (the
    path of its session's directory, unique on the host whatever the profile root); every change
    under an exclusive flock of `.lock`, so two processes never lease one uid. Leases outlive the
    process that took them (a browser outlives its task); the one that stops the browser, or
    reconcile (`reclaim`), gives them back.
    """

    def __init__(self, directory: Path, *, base: int, span: int = UID_SPAN) -> None:
        self.directory = Path(directory)
        self.base = base
        self.span = span

    @classmethod
    def configured(cls) -> UidLeases:
        return cls(Path(settings.BROWSER_SANDBOX_UID_DIR), base=int(settings.BROWSER_SANDBOX_UID_BASE))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.directory / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _holders(self) -> dict[int, str]:
        holders = {}
        for entry in self.directory.iterdir() if self.directory.exists() else ():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    holders[int(entry.name)] = entry.read_text()
        return holders

    def holders(self) -> dict[int, str]:
        with self._locked():
            return self._holders()

    def holds(self, name: str, uid: int) -> bool:
        """Whether `name` holds `uid` (one lease file read, whatever the number of leases)."""
        with self._locked():
            return self._holds(name, uid)

    def _holds(self, name: str, uid: int) -> bool:
        try:
            return (self.directory / str(uid)).read_text() == name
        except OSError:
            return False

    def holder(self, name: str) -> int | None:
        """The uid `name` holds, or None."""
        for uid, holder in self.holders().items():
            if holder == name:
                return uid
        return None

    def lease(self, name: str) -> int:
        """A uid no other live browser holds (the one `name` already holds, if any)."""
        with self._locked():
            holders = self._holders()
            for uid, holder in holders.items():
                if holder == name:
                    return uid
            cursor_file = self.directory / ".next"
            try:
                cursor = int(cursor_file.read_text() or 0) % self.span
            except (OSError, ValueError):
                cursor = 0
            for step in range(self.span):
                offset = (cursor + step) % self.span
                uid = self.base + offset
                if uid not in holders:
                    (self.directory / str(uid)).write_text(name)
                    cursor_file.write_text(str(offset + 1))
                    return uid
        raise RuntimeError(f"no sandbox uid is free ({self.span} browsers on this host)")

    def release(
        self, name: str, *, cleanup: Callable[[int], None] | None = None, only: int | None = None
    ) -> int | None:
        """Give back the uid `name` holds; the uid, or None when it held none.

        `cleanup(uid)` (kill what runs as it, remove its proxy route) runs under the lock, before
        the uid is free: a uid is never leased again before what the last browser left is gone,
        and a cleanup never reaches the next holder's browser or route (two stops of one browser
        at once: the second finds nothing to release and cleans nothing). `only`: give it back
        only if it is that uid (a failed start gives back its own lease, never the one a later
        start of the same browser took meanwhile)."""
        with self._locked():
            if only is not None:
                held = [only] if self._holds(name, only) else []
            else:
                held = [uid for uid, holder in self._holders().items() if holder == name][:1]
            for uid in held:
                if cleanup is not None:
                    cleanup(uid)
                (self.directory / str(uid)).unlink(missing_ok=True)
                return uid
        return None

    def reclaim(
        self, gone: Callable[[str], bool], *, cleanup: Callable[[int], None] | None = None
    ) -> list[int]:
        """Give back the uids of holders for which `gone(name)` is true (reconcile's cleanup
        after a worker died between a start and its stop); `cleanup` as for `release`."""
        freed = []
        with self._locked():
            for uid, holder in self._holders().items():
                if gone(holder):
                    if cleanup is not None:
                        cleanup(uid)
                    (self.directory / str(uid)).unlink(missing_ok=True)
                    freed.append(uid)
        return freed


def _probe(session_dir: Path, uid: int | None) -> int | None:
    """The probe's exit status as `uid`; None when this process cannot switch to it."""
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", _PROBE, "probe", str(session_dir)],
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
            user=uid,
            group=uid,
            extra_groups=None if uid is None else [],
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode


def sandbox_prepare(*, session_id: str, session_dir: Path) -> SandboxPlan:
    """Decide how this session's browser runs, and hand its directory to its uid.

    BROWSER_SANDBOX=off: as this process, --no-sandbox (what every browser did before). auto:
    the best this host allows. on: the sandbox or no browser (BrowserStartError).
    """
    mode = settings.BROWSER_SANDBOX
    if mode == "off":
        return SandboxPlan(uid=None, sandbox=False)
    uid: int | None = None
    leases = UidLeases.configured()
    if os.geteuid() == 0:
        try:
            uid = leases.lease(str(session_dir))
        except RuntimeError as exc:
            raise BrowserStartError(str(exc)) from None
        os.chown(session_dir, uid, uid)
        session_dir.chmod(0o700)
        # The uid must be able to pass through the root to its own directory, and no further.
        root = session_dir.parent
        root.chmod(root.stat().st_mode & 0o7777 | 0o011)
    status = _probe(session_dir, uid)
    if status in (None, _CANNOT_REACH) and uid is not None:
        # This process cannot switch to the uid (a container mapping few uids), or the uid cannot
        # reach the directory: run as this process, and as root that means no sandbox.
        os.chown(session_dir, 0, 0)
        leases.release(str(session_dir))
        uid, status = None, _NO_USERNS
    walled = False
    if uid is not None:
        try:
            walled = firewall.ensure(base=leases.base, span=leases.span)
        except BrowserStartError:
            leases.release(str(session_dir))
            raise
    plan = SandboxPlan(
        uid=uid, sandbox=status == 0 and (uid is not None or os.geteuid() != 0), firewall=walled
    )
    if mode == "on" and not plan.sandbox:
        if uid is not None:
            leases.release(str(session_dir))
        raise BrowserStartError(
            "BROWSER_SANDBOX=on but Chromium's sandbox cannot start here (the worker must be able to "
            "run browsers as an unprivileged uid that may create user namespaces)"
        )
    return plan
