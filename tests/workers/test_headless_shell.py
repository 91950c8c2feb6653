"""The headless-shell flavour (a browser started with flavour headless_shell runs
CHROMIUM_HEADLESS_SHELL_BINARY, /usr/lib/chromium/chromium-headless-shell).

The rest of the suite mostly runs the default, full Chromium. These tests run what differs in the shell
and what must hold in it all the same: it starts (chromedriver opens no tab in it by itself), as
its own uid with its sandbox, through the egress filter; the display applies; pages open no
windows (the shell has no popup blocker, so none at all) while the API's tabs work; downloads and
file choosers stay refused; a failed load is an action failure. `bin/dev install` installs the
package: a missing binary fails here rather than skipping. A host without the flavour's binary
refuses the start with a clear BrowserStartError and leaves nothing behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from sessions.action_specs import MAX_TABS
from tests.conftest import free_port
from tests.support.processes import browser_processes, wait_until
from tests.workers.conftest import SECRET_MARKER
from tests.workers.test_actions_executor import Browser, _png_size, _start, _stop
from tests.workers.test_browser_isolation import _group_processes, _handles, _trap_attached
from workers.browser import BrowserStartError
from workers.browser.base import Display
from workers.browser.executor import ActionFailed
from workers.browser.local import LocalBackend

# Starts browsers of its own, through the suite's egress filter (the stack tier).
pytestmark = pytest.mark.usefixtures("egress_filter")

SHELL = "/usr/lib/chromium/chromium-headless-shell"


@pytest.fixture(scope="module")
def shell() -> Iterator[Browser]:
    assert Path(SHELL).exists(), "bin/dev install puts Debian's chromium-headless-shell there"
    started = _start(Display(640, 480, 2.0), flavour="headless_shell")
    yield started
    _stop(started)


def test_the_shell_starts_sandboxed_through_the_filter_with_no_launcher_left(shell: Browser) -> None:
    processes = browser_processes(shell.handle.profile_dir)
    browsers = [(pid, cmd) for pid, cmd in processes if "chromium-headless-shell" in cmd]
    assert browsers, processes
    # The launcher exec'd the shell: no /bin/sh stays between chromedriver and the browser.
    assert not [cmd for _, cmd in processes if cmd.startswith(("/bin/sh", "sh "))], processes
    main_pid = min(pid for pid, _ in browsers)
    cmdline = Path(f"/proc/{main_pid}/cmdline").read_bytes().decode().split("\0")
    assert "--block-new-web-contents" in cmdline
    assert any(arg.startswith("--proxy-server=") for arg in cmdline)
    assert "--force-webrtc-ip-handling-policy=disable_non_proxied_udp" in cmdline
    assert not any(arg.startswith("--headless") for arg in cmdline)
    if os.geteuid() == 0:
        assert Path(f"/proc/{main_pid}").stat().st_uid != 0
        assert "--no-sandbox" not in cmdline


def test_the_display_and_scale_apply(shell: Browser, pages_server: str) -> None:
    shell.act("navigate", url=f"{pages_server}/tabs.html")
    png = shell.act("screenshot").screenshot_png
    assert png is not None
    assert _png_size(png) == (1280, 960)


def test_pages_open_no_windows_but_the_tab_actions_work(shell: Browser, pages_server: str) -> None:
    main = shell.act("navigate", url=f"{pages_server}/popups.html").main_tab
    assert shell.js("return window.opened") is False  # window.open returned null
    shell.act("step", action="click", target={"selector": "#many"}, main_tab=main)
    # Proves a negative: no window opens. window.open runs inside the click handler, which has
    # returned when the step does; a window it opened is a handle at once, so 0.5 s is plenty.
    time.sleep(0.5)
    assert _handles(shell) == [main]  # not even on a gesture
    opened = [shell.act("new_tab", main_tab=main).result["tab_id"] for _ in range(MAX_TABS - 1)]
    try:
        assert len(_handles(shell)) == MAX_TABS
        with pytest.raises(ActionFailed, match=f"at most {MAX_TABS} tabs"):
            shell.act("new_tab", main_tab=main)
    finally:
        for tab in opened:
            shell.act("close_tab", tab_id=tab, main_tab=main)
    assert _handles(shell) == [main]


def test_downloads_and_file_choosers_stay_refused(shell: Browser, pages_server: str, host_file: str) -> None:
    shell.act("navigate", url=f"{pages_server}/popups.html")
    shell.act("step", action="click", target={"selector": "#download"})
    # Proves a negative, as in test_browser_isolation.py: a download landed within a few hundred ms.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        found = list(Path(shell.handle.profile_dir).rglob("bf-download*"))
        assert not found, found
        time.sleep(0.1)

    shell.act("navigate", url=f"{pages_server}/file_trap.html")
    shell.act("step", action="fill", target={"selector": "#t"}, value=host_file)
    assert shell.js("return document.getElementById('t').type") == "file"
    assert _trap_attached(shell) == 0
    assert SECRET_MARKER not in shell.act("html").result["html_content"]


def test_a_failed_load_is_an_action_failure_and_the_browser_carries_on(
    shell: Browser, pages_server: str
) -> None:
    refused = f"http://127.0.0.1:{free_port()}/nothing-listens-here"
    # The shell's error page is empty: no net error code to quote.
    with pytest.raises(ActionFailed, match=r"Could not load http://127\.0\.0\.1:\d+/nothing-listens-here: "):
        shell.act("navigate", url=refused)
    assert shell.act("navigate", url=f"{pages_server}/tabs.html").result["url"].endswith("/tabs.html")


def test_stopping_a_shell_leaves_no_process() -> None:
    """Only the shell's main process carries the profile path in its command line (its helpers
    do not, unlike full Chromium's): stopping must still end every one of them. They all stay in
    chromedriver's process group, which the stop kills."""
    browser = _start(Display(800, 600, 1.0), flavour="headless_shell")
    pgid = os.getpgid(browser.handle.browser_pid)
    members = _group_processes(pgid)
    helpers = [
        pid
        for pid in members
        if "--type=" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    ]
    assert len(helpers) >= 2, members  # renderer, network service, zygotes...
    _stop(browser)
    assert wait_until(lambda: not _group_processes(pgid), timeout=10, message="the browser's group to exit")


@pytest.mark.parametrize(
    ("flavour", "setting"),
    [("headless_shell", "CHROMIUM_HEADLESS_SHELL_BINARY"), ("chromium", "CHROMIUM_BINARY")],
)
def test_a_flavour_whose_binary_is_missing_is_a_clear_start_error(
    flavour: str, setting: str, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-browser")
    backend = LocalBackend(root=tmp_path / "browsers")
    with override_settings(**{setting: missing}), pytest.raises(BrowserStartError) as raised:
        backend.start(session_id="exec-missing", display=Display(), flavour=flavour)
    assert str(raised.value) == (
        f"this host has no {flavour} browser: {setting} ({missing}) is not an executable file"
    )
    assert not (tmp_path / "browsers" / "exec-missing").exists()  # nothing started, nothing left
    assert not browser_processes(str(tmp_path / "browsers"))


def test_an_unknown_flavour_is_a_start_error(tmp_path: Path) -> None:
    with pytest.raises(BrowserStartError, match="unknown browser flavour 'firefox'"):
        LocalBackend(root=tmp_path).start(session_id="exec-unknown", display=Display(), flavour="firefox")
