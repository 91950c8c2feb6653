from __future__ import annotations

from pathlib import Path
from typing import Any

from workers.browser import egress
from workers.browser.base import Display

# --disable-background-networking and friends: this network is closed, and Chromium's calls
# home would be refused many at a time and slow every start.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
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


def chrome_capabilities(*, display: Display, binary: str | None, profile_dir: Path | None) -> dict[str, Any]:
    args = [
        *CHROMIUM_ARGS,
        f"--window-size={display.width},{display.height}",
        f"--force-device-scale-factor={display.scale}",
        *egress.chromium_args(),
    ]
    if profile_dir is not None:
        args.append(f"--user-data-dir={profile_dir}")
    chrome_options: dict[str, Any] = {"args": args}
    if prefs := egress.chromium_prefs():
        chrome_options["prefs"] = prefs
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
