from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from workers.browser import egress
from workers.browser.base import Display

# --disable-background-networking and friends: this network is closed, and Chromium's calls
# home would be refused many at a time and slow every start.
CHROMIUM_ARGS = [
    "--headless=new",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--metrics-recording-only",
    "--password-store=basic",
    "--hide-scrollbars",
    "--mute-audio",
    # Crashpad handlers double-fork out of the process group and outlive the browser.
    "--disable-breakpad",
]


# Downloads are refused (3: block all): a page cannot fill the worker's disk, nor leave files
# that a later read could reach. Chromium's own password manager and notifications are off.
BROWSER_PREFS: dict[str, Any] = {
    "download_restrictions": 3,
    "download": {"prompt_for_download": False},
    "credentials_enable_service": False,
    "profile": {"password_manager_enabled": False, "default_content_setting_values": {"notifications": 2}},
}


def is_headless_shell(binary: str) -> bool:
    """Chromium's headless shell (Debian's chromium-headless-shell, Chrome for Testing's
    chrome-headless-shell): always headless, no --headless switch."""
    name = Path(binary).name
    return "headless-shell" in name or "headless_shell" in name


def headless_shell_launcher(binary: str) -> str:
    """A launcher script for the headless shell. The shell opens no tab unless given a URL on
    its command line, and chromedriver passes none (it then fails with "unable to discover open
    pages"); the full browser opens a blank tab by itself. One exec, no process left behind."""
    return f'#!/bin/sh\nexec {shlex.quote(binary)} "$@" about:blank\n'


def chrome_capabilities(
    *,
    display: Display,
    binary: str | None,
    profile_dir: Path | None,
    sandbox: bool = False,
    headless_shell: bool = False,
    debugging_pipe: bool = False,
) -> dict[str, Any]:
    """`sandbox`: Chromium's own sandbox can start (workers/browser/sandbox.py); without it the
    browser needs --no-sandbox (as root, or where user namespaces are not allowed).
    `headless_shell`: `binary` launches the headless shell (no --headless switch).
    `debugging_pipe`: chromedriver talks to Chromium over a pipe, and Chromium listens on no
    DevTools port (which any local process could otherwise drive; local backend)."""
    args = [
        *(arg for arg in CHROMIUM_ARGS if not (headless_shell and arg.startswith("--headless"))),
        # The shell has no popup blocker: a page could open windows without end from a timer.
        # There, pages open none at all (window.open returns null, target=_blank links stay
        # put); the API's tab actions still open tabs (WebDriver's New Window).
        *(["--block-new-web-contents"] if headless_shell else []),
        *([] if sandbox else ["--no-sandbox"]),
        *(["--remote-debugging-pipe"] if debugging_pipe else []),
        f"--window-size={display.width},{display.height}",
        f"--force-device-scale-factor={display.scale}",
        *egress.chromium_args(),
    ]
    if profile_dir is not None:
        args.append(f"--user-data-dir={profile_dir}")
    chrome_options: dict[str, Any] = {
        "args": args,
        "prefs": {**BROWSER_PREFS, **egress.chromium_prefs()},
        # chromedriver turns the popup blocker off by default: a page could then open tabs
        # without end from a timer. With it on, a tab opens only on a user gesture, one at a time,
        # and the executor closes what goes past MAX_TABS (executor/__init__.py).
        "excludeSwitches": ["disable-popup-blocking"],
    }
    if binary:
        chrome_options["binary"] = binary
    return {
        "browserName": "chrome",
        "pageLoadStrategy": "normal",
        "unhandledPromptBehavior": "accept",
        # Actions must answer well inside the SDK's 60 s read timeout.
        "timeouts": {"pageLoad": 25_000, "script": 20_000, "implicit": 0},
        "goog:chromeOptions": chrome_options,
    }
