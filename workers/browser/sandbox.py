"""Who a local browser runs as, and whether Chromium's sandbox can start (BROWSER_SANDBOX).

Chromium refuses its sandbox as root, and its sandbox needs user namespaces (Debian's Chromium
has no setuid helper). So a worker running as root starts each session's chromedriver and
Chromium as an unprivileged uid of their own (BROWSER_SANDBOX_UID_BASE plus a number taken from
the session id: no passwd entry needed), owning the session's directory (mode 0700); a worker
that is not root runs them as itself. Then, if that uid can create a user namespace, Chromium
starts with its sandbox (renderers in their own namespaces under seccomp-bpf); if not, with
--no-sandbox.

Each start probes this for real (a shell as that uid, which enters the session's directory and
runs `unshare --user true`, a few milliseconds): the answer depends on the kernel
(user.max_user_namespaces, kernel.unprivileged_userns_clone on older Debian kernels, AppArmor's
kernel.apparmor_restrict_unprivileged_userns on Ubuntu), on seccomp filters of a container
runtime, and on whether the uid can reach BROWSER_PROFILE_ROOT.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from workers.browser.errors import BrowserStartError

# How many uids sessions are spread over, from BROWSER_SANDBOX_UID_BASE.
UID_SPAN = 50_000

_PROBE = 'cd "$1" || exit 97; unshare --user true 2>/dev/null || exit 98'
_CANNOT_REACH, _NO_USERNS = 97, 98


@dataclass(frozen=True)
class SandboxPlan:
    uid: int | None  # run chromedriver and Chromium as this uid (None: as this process)
    sandbox: bool  # start Chromium with its sandbox


def session_uid(session_id: str) -> int:
    digest = int(hashlib.sha256(session_id.encode()).hexdigest(), 16)
    return int(settings.BROWSER_SANDBOX_UID_BASE) + digest % UID_SPAN


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
    if os.geteuid() == 0:
        uid = session_uid(session_id)
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
        uid, status = None, _NO_USERNS
    plan = SandboxPlan(uid=uid, sandbox=status == 0 and (uid is not None or os.geteuid() != 0))
    if mode == "on" and not plan.sandbox:
        raise BrowserStartError(
            "BROWSER_SANDBOX=on but Chromium's sandbox cannot start here (the worker must be able to "
            "run browsers as an unprivileged uid that may create user namespaces)"
        )
    return plan
