"""A browser start yields the CPU to live sessions: it runs niced (its process group, and its
autogroup where the kernel has them) and goes back to nice 0 once started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test import override_settings

from tests.support.processes import wait_until
from tests.workers.test_actions_executor import _start, _stop
from tests.workers.test_browser_isolation import _group_processes
from workers.browser.base import Display

# Starts browsers of its own, through the suite's egress filter (the stack tier).
pytestmark = pytest.mark.usefixtures("egress_filter")


def _nices(pgid: int) -> set[int]:
    values = set()
    for pid in _group_processes(pgid):
        try:
            values.add(int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16]))
        except (FileNotFoundError, IndexError):
            continue
    return values


def _autogroup_nice(pgid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pgid}/autogroup").read_text().split()[-1])
    except (FileNotFoundError, ValueError, IndexError):
        return None  # a kernel without autogroups


def test_a_starting_browser_is_niced_then_back_to_zero() -> None:
    with override_settings(BROWSER_START_NICE=10, BROWSER_START_NICE_SECONDS=3):
        browser = _start(Display(800, 600, 1.0))
        try:
            pgid = os.getpgid(browser.handle.browser_pid)
            # Chromium and its helpers inherited it from chromedriver.
            assert _nices(pgid) == {10}, _nices(pgid)
            assert _autogroup_nice(pgid) in (None, 10)
            if os.geteuid() == 0:  # lowering a nice value again needs privilege
                wait_until(lambda: _nices(pgid) == {0}, timeout=10, message="nice 0 after the start")
                assert _autogroup_nice(pgid) in (None, 0)
        finally:
            _stop(browser)


def test_zero_turns_it_off() -> None:
    with override_settings(BROWSER_START_NICE=0):
        browser = _start(Display(800, 600, 1.0))
        try:
            assert _nices(os.getpgid(browser.handle.browser_pid)) == {0}
        finally:
            _stop(browser)
