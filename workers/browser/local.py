"""The local backend: chromedriver and Debian's Chromium on this machine.

Each session gets its own chromedriver in its own process group, and a profile directory
`<BROWSER_PROFILE_ROOT>/<session id>/` (or `<pool id>/` for a warm pool browser, `pool_...`,
which the session that claims it keeps). Chromium is chromedriver's child and stays in that group,
so stopping kills the whole group at once and removes the directory. The id is in every command
line (the profile and log paths), which is how reconcile finds browsers without a row.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from sessions.location import CHROMIUM, HEADLESS_SHELL, BrowserLocation
from workers.browser import egress, proxy_routes
from workers.browser.base import Display, prepare_first_tab, webdriver_request, webdriver_session_alive
from workers.browser.errors import BrowserError, BrowserStartError
from workers.browser.options import chrome_capabilities, headless_shell_launcher
from workers.browser.sandbox import UidLeases, sandbox_prepare

# Popen objects of chromedrivers this process started, so that they are reaped, not left zombies.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _set_group_nice(pgid: int, nice: int) -> bool:
    """Set the nice value of a browser's process group and of its autogroup (with
    sched_autogroup_enabled, the kernel shares CPU between sessions first, and each browser is a
    session of its own: only the autogroup's nice weighs it against the others). False when this
    process may not (raising priority needs root or CAP_SYS_NICE)."""
    try:
        os.setpriority(os.PRIO_PGRP, pgid, nice)
    except (PermissionError, ProcessLookupError):
        return False
    with contextlib.suppress(OSError):
        Path(f"/proc/{pgid}/autogroup").write_text(str(nice))
    return True


def _start_niced(pgid: int) -> None:
    """A start is batch work: it yields the CPU to live sessions while it runs."""
    if settings.BROWSER_START_NICE:
        _set_group_nice(pgid, settings.BROWSER_START_NICE)


def _start_done(pgid: int) -> None:
    """Back to nice 0 a little after the start (Chromium's own start-up work goes on for about a
    second after it answers), from a timer thread: the start does not wait for it."""
    if not settings.BROWSER_START_NICE:
        return
    timer = threading.Timer(settings.BROWSER_START_NICE_SECONDS, _set_group_nice, args=(pgid, 0))
    timer.daemon = True
    timer.start()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    child = _children.pop(pgid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


def _descendants(pid: int) -> list[int]:
    """The processes below `pid` (children, theirs, ...), whatever their process group."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _kill_tree(pid: int) -> None:
    """Kill `pid`'s group and every process below it (Chromium's zygotes have groups of their own)."""
    below = _descendants(pid)
    _kill_group(pid)
    for child in below:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)
    _reap_finished_children()


def _reap_finished_children() -> None:
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            _children.pop(pid, None)
    # As a subreaper this process also inherits Chromium helpers whose parent died first.
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def become_subreaper() -> None:
    """Adopt orphaned descendants (Chromium's helpers) so that they are reaped, not left zombies.

    Worker processes call this once. Without it they go to PID 1, which in some containers
    never reaps them.
    """
    PR_SET_CHILD_SUBREAPER = 36
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _uid_processes(uid: int) -> list[int]:
    """Processes whose real or effective uid is `uid`."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as status:
                for line in status:
                    if line.startswith("Uid:"):
                        real, effective = line.split()[1:3]
                        if uid in (int(real), int(effective)):
                            pids.append(int(entry.name))
                        break
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return pids


def end_uid(uid: int) -> None:
    """Kill everything running as a sandbox uid and remove what it left at the top of /tmp (a
    crash handler's or an escaped process's leftovers; Chromium's singleton sockets) and its
    upstream proxy route, so the next browser leased this uid finds nothing of the last one's.
    Only for leased sandbox uids."""
    proxy_routes.routes_remove(uid=uid)
    for _ in range(3):  # a process forking while it is killed: look again
        pids = _uid_processes(uid)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            child = _children.pop(pid, None)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=5)
    with contextlib.suppress(OSError), os.scandir("/tmp") as entries:  # noqa: S108 - Chromium's /tmp
        for entry in entries:
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # A zombie has exited; only its exit status is left to collect.
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


# All that chromedriver and Chromium (its child) get from the worker's environment: never the
# secret key, the database or broker URLs and passwords, which a page that escaped the renderer,
# or a file read through the browser, could otherwise find in /proc/self/environ.
BROWSER_ENV_KEEP = frozenset({"PATH", "LANG", "LANGUAGE", "TZ"})
BROWSER_ENV_KEEP_PREFIXES = ("LC_",)


def browser_environment(session_dir: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name in BROWSER_ENV_KEEP or name.startswith(BROWSER_ENV_KEEP_PREFIXES)
    }
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    # Chromium's crash handler double-forks out of the group and keeps its database under
    # $HOME: a per-session HOME puts the session id in its command line too. The XDG directories
    # keep its caches and config in the session's directory, removed with it.
    env["HOME"] = str(session_dir)
    env["XDG_CONFIG_HOME"] = str(session_dir / ".config")
    env["XDG_CACHE_HOME"] = str(session_dir / ".cache")
    env["XDG_DATA_HOME"] = str(session_dir / ".local" / "share")
    # No TMPDIR: the worker's may not be writable by the browser's uid, and one in the session's
    # directory makes Chromium's singleton socket path longer than a Unix socket allows (108
    # bytes), so it exits at start. Chromium uses /tmp.
    return env


def flavour_binary(flavour: str) -> str:
    """The binary this host runs for `flavour`; BrowserStartError when the host has none (nothing
    is started, nothing is left behind)."""
    if flavour == CHROMIUM:
        binary, setting = str(settings.CHROMIUM_BINARY), "CHROMIUM_BINARY"
    elif flavour == HEADLESS_SHELL:
        binary, setting = str(settings.CHROMIUM_HEADLESS_SHELL_BINARY), "CHROMIUM_HEADLESS_SHELL_BINARY"
    else:
        raise BrowserStartError(f"unknown browser flavour {flavour!r} (chromium or headless_shell)")
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise BrowserStartError(
            f"this host has no {flavour} browser: {setting} ({binary}) is not an executable file"
        )
    return binary


class LocalBackend:
    name = "local"

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or settings.BROWSER_PROFILE_ROOT)
        self.host = settings.WORKER_HOST

    def _session_dir(self, session_id: str) -> Path:
        return self.root / session_id

    def start(
        self,
        *,
        session_id: str,
        display: Display,
        routes: dict[str, Any] | None = None,
        flavour: str = CHROMIUM,
    ) -> BrowserLocation:
        """Start a browser of `flavour` (full Chromium or the headless shell); with `routes` (an
        egress route document, sessions/proxies.py) its traffic goes through those upstream
        proxies from its first connection."""
        binary = flavour_binary(flavour)
        _reap_finished_children()
        egress.ensure_ready()
        session_dir = self._session_dir(session_id)
        # A redelivered start may find the browser of its earlier attempt: end that one first.
        self._kill_session_processes(session_id)
        self._end_lease(session_id)
        shutil.rmtree(session_dir, ignore_errors=True)
        session_dir.mkdir(parents=True)
        plan = sandbox_prepare(session_id=session_id, session_dir=session_dir)
        if plan.uid is not None:
            # Written (DIRECT without a proxy) before anything runs as the uid.
            try:
                proxy_routes.routes_start(uid=plan.uid, document=routes)
            except OSError as exc:
                self._abandon_start(None, session_id, plan.uid)
                raise BrowserStartError(f"the proxy route could not be written ({exc.strerror})") from None
        elif routes is not None:
            shutil.rmtree(session_dir, ignore_errors=True)
            raise BrowserStartError(
                "a session with a proxy needs its browser to run as a sandbox uid of its own (a root "
                "worker, BROWSER_SANDBOX auto or on); it would otherwise share its route with others"
            )
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [settings.CHROMEDRIVER_BINARY, f"--port={port}", f"--log-path={session_dir}/chromedriver.log"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=browser_environment(session_dir),
            user=plan.uid,
            group=plan.uid,
            extra_groups=None if plan.uid is None else [],
        )
        _children[process.pid] = process
        # Before chromedriver starts Chromium (on the new-session request below), which inherits it.
        _start_niced(process.pid)
        try:
            self._wait_for_driver(url, process)
            capabilities = chrome_capabilities(
                display=display,
                binary=self._launcher(session_dir, plan.uid, binary=binary, flavour=flavour),
                profile_dir=session_dir / "profile",
                sandbox=plan.sandbox,
                headless_shell=flavour == HEADLESS_SHELL,
                # With the firewall the browser's uid may open no connection but to the filter,
                # so chromedriver reaches Chromium over a pipe (and no DevTools port listens).
                debugging_pipe=plan.firewall,
            )
            reply = webdriver_request(
                "POST",
                f"{url}/session",
                body={"capabilities": {"alwaysMatch": capabilities}},
                timeout=settings.BROWSER_START_TIMEOUT_SECONDS,
            )
            webdriver_session_id = str(reply["value"]["sessionId"])
            prepare_first_tab(url, webdriver_session_id, display)
            if plan.uid is not None and not UidLeases.configured().holds(str(session_dir), plan.uid):
                # Another start of this browser (a redelivered task) ended this one's lease and
                # took the name: this browser's uid may be anybody's now, and its route too.
                raise BrowserStartError("another start of this browser took its place")
        except (BrowserError, KeyError, TypeError) as exc:
            self._abandon_start(process.pid, session_id, plan.uid)
            raise BrowserStartError(f"Chromium did not start: {exc}") from exc
        _start_done(process.pid)
        return BrowserLocation(
            backend=self.name,
            webdriver_url=url,
            webdriver_session_id=webdriver_session_id,
            host=self.host,
            browser_pid=process.pid,
            profile_dir=str(session_dir),
        )

    @staticmethod
    def _launcher(session_dir: Path, uid: int | None, *, binary: str, flavour: str) -> str:
        """What chromedriver starts: the full browser itself, or the headless shell through a
        launcher in the session's directory (readable by the session's uid, removed with it)."""
        if flavour != HEADLESS_SHELL:
            return binary
        launcher = session_dir / "chromium"
        launcher.write_text(headless_shell_launcher(binary))
        launcher.chmod(0o500)
        if uid is not None:
            os.chown(launcher, uid, uid)
        return str(launcher)

    def _wait_for_driver(self, url: str, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + settings.BROWSER_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BrowserStartError(f"chromedriver exited with {process.returncode}")
            try:
                if webdriver_request("GET", f"{url}/status", timeout=1)["value"].get("ready"):
                    return
            except BrowserError:
                pass
            time.sleep(0.01)
        raise BrowserStartError("chromedriver did not answer in time")

    def stop(self, handle: BrowserLocation, *, session_id: str) -> None:
        if handle.host and handle.host != self.host:
            # Another host's browser (that host is gone, or this worker took a stray task): its
            # pid means nothing here, and its own reconcile kills it if it is still running.
            return
        if handle.webdriver_session_id and handle.webdriver_url:
            # Let chromedriver close Chromium cleanly; the group kill below is what guarantees it.
            with contextlib.suppress(BrowserError):
                webdriver_request(
                    "DELETE", f"{handle.webdriver_url}/session/{handle.webdriver_session_id}", timeout=3
                )
        if handle.browser_pid:
            _kill_group(handle.browser_pid)
        # A warm pool browser keeps its pool id in its paths after a session claimed it.
        names = {session_id, Path(handle.profile_dir).name if handle.profile_dir else session_id}
        for name in names:
            self._kill_session_processes(name)
            self._end_lease(name)
            shutil.rmtree(self._session_dir(name), ignore_errors=True)
        _reap_finished_children()

    def _abandon_start(self, pid: int | None, session_id: str, uid: int | None) -> None:
        """Undo a start that failed: its own processes, and its uid and directory unless a later
        start of the same browser has taken them over meanwhile (its browser lives there)."""
        if pid is not None:
            # By its tree, not by its uid: the uid may be another browser's by now.
            _kill_tree(pid)
        if uid is None or os.geteuid() != 0:
            shutil.rmtree(self._session_dir(session_id), ignore_errors=True)
            return
        holder, leases = str(self._session_dir(session_id)), UidLeases.configured()
        if leases.release(holder, cleanup=end_uid, only=uid) is not None or leases.holder(holder) is None:
            shutil.rmtree(self._session_dir(session_id), ignore_errors=True)

    def _end_lease(self, name: str) -> None:
        """Kill whatever still runs as the sandbox uid browser `name` holds, then give it back."""
        if os.geteuid() != 0:
            return  # only a root worker leases uids
        UidLeases.configured().release(str(self._session_dir(name)), cleanup=end_uid)

    def is_alive(self, handle: BrowserLocation) -> bool:
        if handle.browser_pid and handle.host == self.host and not _pid_alive(handle.browser_pid):
            return False
        return webdriver_session_alive(handle)

    def _browser_groups(self) -> dict[str, set[int]]:
        """Process groups of our browsers on this machine, by session id (from command lines)."""
        marker = f"{self.root}/"
        groups: dict[str, set[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    cmdline = f.read().decode(errors="replace")
                pgid = os.getpgid(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            at = cmdline.find(marker)
            if at < 0:
                continue
            session_id = cmdline[at + len(marker) :].split("/", 1)[0].split("\0", 1)[0]
            if session_id:
                groups.setdefault(session_id, set()).add(pgid)
        return groups

    def _kill_session_processes(self, session_id: str) -> None:
        for pgid in self._browser_groups().get(session_id, set()):
            _kill_group(pgid)

    def kill_orphans(self, *, live_session_ids: set[str], live_webdriver_ids: set[str]) -> list[str]:
        return self.kill_orphans_of(lambda: live_session_ids)

    def kill_orphans_of(self, live_names: Callable[[], set[str]], *, prefix: str = "") -> list[str]:
        """Kill browsers whose id (in their profile path) is not in `live_names()`; only those
        whose id starts with `prefix`. The processes are listed first and the names read after,
        so a browser whose row was written after the names were read is never taken for an
        orphan (rows are always written before their browser starts)."""
        groups = self._browser_groups()
        live = live_names()
        killed = []
        for session_id, pgids in groups.items():
            if session_id in live or not session_id.startswith(prefix):
                continue
            for pgid in pgids:
                _kill_group(pgid)
            self._end_lease(session_id)
            shutil.rmtree(self._session_dir(session_id), ignore_errors=True)
            killed.append(session_id)
        if os.geteuid() == 0:
            # Leases of browsers that are gone altogether (a worker died between start and stop):
            # no process with the name in its paths, no directory. Starts create the directory
            # before they lease, so a start in progress is never taken for one.
            def gone(holder: str) -> bool:
                path = Path(holder)
                return (
                    path.parent == self.root
                    and path.name.startswith(prefix)
                    and path.name not in groups
                    and path.name not in live
                    and not path.exists()
                )

            UidLeases.configured().reclaim(gone, cleanup=end_uid)
        _reap_finished_children()
        return killed
