"""What a hostile page cannot get out of its browser: host files, the worker's environment, more
output, tabs or disk than the limits allow.

Real headless Chromium through the executor, as in test_actions_executor.py; pages served by the
tests on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessions.action_specs import MAX_TABS
from tests.workers.conftest import SECRET_MARKER
from tests.workers.test_actions_executor import Browser, _start, _stop
from workers.browser.base import Display, webdriver_request
from workers.browser.local import LocalBackend

# Starts browsers of its own, through the suite's egress filter (the stack tier).
pytestmark = pytest.mark.usefixtures("egress_filter")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    started = _start(Display(800, 600, 1.0))
    yield started
    _stop(started)


def _trap_attached(browser: Browser) -> int:
    return int(browser.js("const t = document.getElementById('t'); return t.files ? t.files.length : 0"))


def test_step_fill_never_attaches_a_host_file_to_a_field_that_turns_into_a_file_input(
    browser: Browser, pages_server: str, host_file: str
) -> None:
    browser.act("navigate", url=f"{pages_server}/file_trap.html")
    browser.act("step", action="fill", target={"selector": "#t"}, value=host_file)
    assert browser.js("return document.getElementById('t').type") == "file"  # the trap did spring
    assert _trap_attached(browser) == 0
    assert SECRET_MARKER not in browser.act("html").result["html_content"]


def test_type_into_a_focused_file_input_attaches_nothing(
    browser: Browser, pages_server: str, host_file: str
) -> None:
    browser.act("navigate", url=f"{pages_server}/file_trap.html")
    browser.js("document.getElementById('t').focus()")
    browser.act("type", text=host_file)
    assert _trap_attached(browser) == 0
    assert SECRET_MARKER not in browser.act("html").result["html_content"]


def _group_processes(pgid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                continue
    return pids


def _environ(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        entries = f.read().decode(errors="replace").split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode(errors="replace").replace("\0", " ")


def test_chromedriver_and_chromium_get_no_secret_from_the_workers_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    canary = "canary-7d1e0b"
    for name in (
        "DJANGO_SECRET_KEY",
        "POSTGRES_PASSWORD",
        "REDIS_URL",
        "DATABASE_URL",
        "AWS_SECRET_ACCESS_KEY",
    ):
        monkeypatch.setenv(name, f"{name}-{canary}")
    started = _start(Display(640, 480, 1.0))
    try:
        assert started.handle.browser_pid is not None
        processes = _group_processes(started.handle.browser_pid)
        chromium = [pid for pid in processes if "--user-data-dir=" in _cmdline(pid)]
        assert started.handle.browser_pid in processes and chromium, processes
        for pid in processes:
            try:
                env = _environ(pid)
            except (ProcessLookupError, FileNotFoundError):
                continue  # a short-lived helper that exited after the listing
            assert not [value for value in env.values() if canary in value], (pid, sorted(env))
            leaked = {name for name in env if name.startswith(("DJANGO_", "POSTGRES_", "REDIS_", "AWS_"))}
            assert not leaked, (pid, _cmdline(pid)[:80], leaked)
        # Zygote children write their titles over the environment block: only these two read clean.
        for pid in (started.handle.browser_pid, chromium[0]):
            assert _environ(pid)["HOME"] == started.handle.profile_dir
    finally:
        _stop(started)


# Output and resource limits ---------------------------------------------------------------------


def _handles(browser: Browser) -> list[str]:
    base = f"{browser.handle.webdriver_url}/session/{browser.handle.webdriver_session_id}"
    return [str(h) for h in webdriver_request("GET", f"{base}/window/handles")["value"]]


def test_html_over_the_limit_is_cut_with_a_flag(browser: Browser, pages_server: str, settings: Any) -> None:
    settings.HTML_MAX_BYTES = 50_000
    browser.act("navigate", url=f"{pages_server}/form.html")
    small = browser.act("html").result
    assert "truncated" not in small and small["html_content"].endswith("</html>")
    browser.js("document.body.append('é'.repeat(100000))")  # two bytes each in UTF-8
    big = browser.act("html").result
    assert big["truncated"] is True
    assert 49_000 < len(big["html_content"].encode()) <= 50_000


def test_pages_open_no_tab_without_a_gesture_and_never_more_than_the_cap(
    browser: Browser, pages_server: str
) -> None:
    main = browser.act("navigate", url=f"{pages_server}/popups.html").main_tab
    # The page's own window.open while loading: refused by the popup blocker.
    assert browser.js("return window.opened") is False
    assert _handles(browser) == [main]
    try:
        # Each click may open one tab (the gesture is used up by the first window.open).
        for _ in range(MAX_TABS + 2):
            browser.act("step", action="click", target={"selector": "#many"}, main_tab=main)
            assert len(_handles(browser)) <= MAX_TABS
        assert main in _handles(browser) and browser.current_tab() == main
    finally:
        for tab in _handles(browser):
            if tab != main:
                browser.act("close_tab", tab_id=tab, main_tab=main)


def test_downloads_are_refused(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/popups.html")
    browser.act("step", action="click", target={"selector": "#download"})
    # Proves a negative: no download. Before downloads were refused the file was in
    # $HOME/Downloads (the session's directory) within a few hundred milliseconds; 3 s of
    # looking is ten times that.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        found = list(Path(browser.handle.profile_dir).rglob("bf-download*"))
        assert not found, found
        time.sleep(0.1)


# The sandbox ------------------------------------------------------------------------------------


def _status(pid: int, field: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return line.split()[1]
    return ""


def _renderers(browser: Browser) -> list[int]:
    assert browser.handle.browser_pid is not None
    return [pid for pid in _group_processes(browser.handle.browser_pid) if "--type=renderer" in _cmdline(pid)]


@pytest.mark.skipif(os.geteuid() != 0, reason="the worker drops to a uid of its own only as root")
def test_a_root_worker_runs_chromium_as_an_unprivileged_uid_with_its_sandbox(
    browser: Browser, pages_server: str
) -> None:
    # This host allows unprivileged user namespaces (docs/decisions.md); BROWSER_SANDBOX=auto.
    browser.act("navigate", url=f"{pages_server}/form.html")
    assert browser.handle.browser_pid is not None
    processes = _group_processes(browser.handle.browser_pid)
    assert processes
    for pid in processes:
        assert _status(pid, "Uid") != "0", _cmdline(pid)[:100]
        assert "--no-sandbox" not in _cmdline(pid), _cmdline(pid)[:200]
    renderers = _renderers(browser)
    assert renderers
    for pid in renderers:
        assert _status(pid, "Seccomp") == "2"  # seccomp-bpf filter on
        assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
    assert (os.stat(browser.handle.profile_dir).st_mode & 0o777) == 0o700


def test_with_the_sandbox_off_chromium_runs_as_before(settings: Any, pages_server: str) -> None:
    settings.BROWSER_SANDBOX = "off"
    started = _start(Display(640, 480, 1.0))
    try:
        started.act("navigate", url=f"{pages_server}/form.html")
        assert started.handle.browser_pid is not None
        assert _status(started.handle.browser_pid, "Uid") == str(os.geteuid())
        assert any("--no-sandbox" in _cmdline(pid) for pid in _renderers(started))
    finally:
        _stop(started)


def test_a_browser_starts_under_a_deep_profile_root(pages_server: str) -> None:
    # Chromium's singleton socket must not follow the profile root into a path longer than a
    # Unix socket allows (it did while TMPDIR pointed into the session's directory).
    root = Path(tempfile.mkdtemp(prefix="bf-deep-")) / ("d" * 40) / "browsers"
    root.mkdir(parents=True)
    backend = LocalBackend(root=root)
    session_id = f"comp_{uuid.uuid4().hex[:24]}"
    handle = backend.start(session_id=session_id, display=Display(640, 480, 1.0))
    try:
        assert webdriver_request("GET", f"{handle.webdriver_url}/session/{handle.webdriver_session_id}/url")
    finally:
        backend.stop(handle, session_id=session_id)
        shutil.rmtree(root.parent.parent)
