"""The action executor: runs one canonical action in a session's browser.

The API layer has already validated and normalised the action into `{"type": ..., **params}`.
This module turns it into as few WebDriver round trips as it can (each costs milliseconds; page
work in one script costs far less) and into our own errors: `ActionFailed` for what went wrong
in the page, `BrowserGone` when the browser is no longer there. No Selenium exception leaves it.

Coordinates arrive in screenshot pixels and are divided by the display's scale: W3C input
actions take CSS pixels. Tab ids are WebDriver window handles, and the "main tab" is the
WebDriver session's current window. That lives in the WebDriver session, not in this process:
any worker may have switched tabs since this one last looked. The caller passes the main tab it
recorded after the session's previous action (`main_tab`); an action in the main tab then runs
without asking (one GET /window less: 1 ms locally, 5 ms through a Grid). If the page closed that
tab meanwhile, the first command fails with "no such window" before anything ran, and the action
finds the new main tab and runs once more. Tab operations and actions in another tab always ask.
The outcome says which tab is the main one afterwards, for the caller to record.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import urllib3
from selenium.common.exceptions import NoSuchWindowException, WebDriverException

from sessions.action_specs import MAX_TABS
from sessions.location import BrowserLocation
from workers.browser.base import Display
from workers.browser.driver import AttachedDriver, attach
from workers.browser.errors import BrowserError
from workers.browser.executor import keyboard, page, pointer, step, tabs
from workers.browser.executor.failures import from_connection, from_webdriver
from workers.browser.executor.page import page_context
from workers.browser.executor.run import (
    ActionFailed,
    ActionOutcome,
    Handler,
    Params,
    Run,
    current_tab,
    ensure_display,
    visiting,
)

__all__ = ["HANDLED_TYPES", "ActionFailed", "ActionOutcome", "run_action"]

_HANDLERS: dict[str, Handler] = {**pointer.HANDLERS, **keyboard.HANDLERS, **page.HANDLERS, **step.HANDLERS}
# These move the main tab themselves, and read tab_id as their own parameter.
_TAB_HANDLERS: dict[str, Handler] = tabs.TAB_HANDLERS
# Actions with no page work, run by workers/action_runner.py itself (change_proxy rewrites the
# browser's egress route file).
RUNNER_TYPES = frozenset({"change_proxy"})
# Every canonical action type (sessions/action_specs.py) has a handler: tests/workers/test_vocabulary.py.
HANDLED_TYPES = frozenset(_HANDLERS) | frozenset(_TAB_HANDLERS) | RUNNER_TYPES
# Actions that give the page a user gesture, the only way it can open a tab (the popup blocker is
# on, options.py): after them, tabs past MAX_TABS are closed. A tab opened later from a timer
# that such a gesture allowed is closed after the next one.
_GESTURES = frozenset(pointer.HANDLERS) | frozenset(keyboard.HANDLERS) | frozenset(step.HANDLERS)


def run_action(
    *, handle: BrowserLocation, display: Display, action: dict[str, Any], main_tab: str = ""
) -> ActionOutcome:
    """Run `action`; `main_tab` is the main tab as recorded after the previous action, if known."""
    kind = str(action.get("type", ""))
    handler = _HANDLERS.get(kind) or _TAB_HANDLERS.get(kind)
    if handler is None:
        raise ActionFailed(f"Unknown action type {kind!r}")
    driver = attach(handle)
    in_main_tab = kind in _HANDLERS and action.get("tab_id") in (None, "", main_tab)
    try:
        if main_tab and in_main_tab:
            commands_before = driver.commands_done
            try:
                return _execute(driver, display, kind, handler, action, main=main_tab)
            except (WebDriverException, ActionFailed) as exc:
                window_gone = isinstance(exc, NoSuchWindowException) or isinstance(
                    exc.__cause__, NoSuchWindowException
                )
                if not window_gone or driver.commands_done != commands_before:
                    raise  # not that, or the tab went away during the action: do not repeat it
                # The page closed the recorded main tab; nothing ran yet: find the main tab.
        return _execute(driver, display, kind, handler, action, main=current_tab(driver, display))
    except BrowserError:
        raise
    except WebDriverException as exc:
        raise from_webdriver(exc, handle) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise from_connection(exc, handle) from exc


def _execute(
    driver: AttachedDriver, display: Display, kind: str, handler: Handler, action: Params, *, main: str
) -> ActionOutcome:
    # Tab operations name their tab in tab_id as a parameter; every other action runs there.
    wanted = main if kind in _TAB_HANDLERS else str(action.get("tab_id") or main)
    run = Run(driver=driver, display=display, main_tab=main, tab=wanted)
    with contextlib.ExitStack() as stack:
        if run.tab != run.main_tab:
            stack.enter_context(visiting(driver, run.tab, back_to=run.main_tab))
            ensure_display(driver, run.tab, display)
        result = handler(run, action)
        if kind in _GESTURES:
            _close_tabs_past_the_cap(run)
        settle_ms = action.get("settle_ms") or 0
        if settle_ms > 0:
            time.sleep(settle_ms / 1000)
        context = page_context(run) if action.get("include_context") else None
        screenshot = run.screenshot_png
        if action.get("screenshot_after") and screenshot is None:
            screenshot = driver.get_screenshot_as_png()
    return ActionOutcome(
        result=result,
        executed_tab_id=run.tab,
        page_context=context,
        screenshot_png=screenshot,
        display=run.new_display,
        main_tab=run.main_tab,
    )


def _close_tabs_past_the_cap(run: Run) -> None:
    """Close the newest tabs past MAX_TABS that the page opened (never the main or current one)."""
    handles = [str(h) for h in run.driver.window_handles]
    extra = len(handles) - MAX_TABS
    for handle in reversed(handles):
        if extra <= 0:
            break
        if handle in (run.main_tab, run.tab):
            continue
        # Window handles are DevTools target ids: closed without switching to it.
        run.driver.cdp("Target.closeTarget", {"targetId": handle})
        run.driver.tab_displays.pop(handle, None)
        extra -= 1
