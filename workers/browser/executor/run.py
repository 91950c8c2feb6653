"""One action in flight, its outcome, and the tabs it moves between."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from selenium.common.exceptions import (
    NoSuchWindowException,
    WebDriverException,
)
from selenium.webdriver.remote.command import Command

from workers.browser.base import Display
from workers.browser.driver import AttachedDriver
from workers.browser.errors import BrowserError, BrowserGone


class ActionFailed(BrowserError):
    """A page-side failure: no such element, a bad selector, a navigation error (net::ERR_*), a
    timeout, closing the last tab. Reported to the user as status "error"; the browser is fine."""


@dataclass
class ActionOutcome:
    result: dict[str, Any]
    executed_tab_id: str
    page_context: dict[str, Any] | None = None
    screenshot_png: bytes | None = None
    display: Display | None = None
    main_tab: str = ""  # the session's current window after the action


@dataclass
class Run:
    """One action in flight."""

    driver: AttachedDriver
    display: Display
    main_tab: str  # the session's current window; tab operations move it
    tab: str  # the tab the action runs in
    screenshot_png: bytes | None = None
    new_display: Display | None = None


Params = dict[str, Any]
Handler = Callable[[Run, Params], dict[str, Any]]


@contextlib.contextmanager
def visiting(driver: AttachedDriver, tab_id: str, *, back_to: str) -> Iterator[None]:
    """Make `tab_id` the current window for a while; the main tab stays `back_to`."""
    switch(driver, tab_id)
    try:
        yield
    except BaseException:
        # The original error matters more than a failed switch back (the tab may be gone).
        with contextlib.suppress(BrowserError, WebDriverException, urllib3.exceptions.HTTPError):
            switch(driver, back_to)
        raise
    switch(driver, back_to)


def current_tab(driver: AttachedDriver, display: Display) -> str:
    try:
        return str(driver.current_window_handle)
    except NoSuchWindowException:
        # The page closed its own tab (window.close()): another tab becomes the main one.
        handles = driver.window_handles
        if not handles:
            raise BrowserGone("The browser has no tabs left") from None
        make_main(driver, handles[-1], display)
        return str(handles[-1])


def switch(driver: AttachedDriver, tab_id: str) -> None:
    # Not driver.switch_to.window: on a miss it visits every tab looking for a window *name*.
    try:
        driver.execute(Command.SWITCH_TO_WINDOW, {"handle": tab_id})
    except NoSuchWindowException:
        raise ActionFailed(f"No tab with id {tab_id!r}") from None


def ensure_display(driver: AttachedDriver, tab_id: str, display: Display) -> None:
    """Emulation is per tab: tabs that the page opened (target=_blank) start without it."""
    if driver.tab_displays.get(tab_id) == display:
        return
    driver.cdp(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": display.width,
            "height": display.height,
            "deviceScaleFactor": display.scale,
            "mobile": False,
        },
    )
    driver.tab_displays[tab_id] = display


def make_main(driver: AttachedDriver, tab_id: str, display: Display) -> None:
    switch(driver, tab_id)
    # A tab in the background has no focus, so key events and focus handlers would misbehave.
    driver.cdp("Page.bringToFront")
    driver.tab_displays.pop(tab_id, None)
    ensure_display(driver, tab_id, display)
