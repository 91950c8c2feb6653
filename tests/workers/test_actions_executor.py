"""The action executor against real headless Chromium, one action at a time through run_action.

Two browsers serve most of the module (starting one takes a second or two): one at scale 1 and
one at scale 2, for the coordinate conversions. Tests that kill a browser get their own, and one
test (marked `grid`) drives a browser on a real Selenium Grid. Each test loads the page it needs
first. Assertions read the page through raw WebDriver calls, not through the code under test.
No database: these tests call the executor the way a worker does, with a handle and a display.
"""

from __future__ import annotations

import json
import math
import os
import signal
import struct
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sessions.action_specs import normalize_action
from sessions.location import BrowserLocation
from tests.conftest import free_port
from workers.browser.base import Display, webdriver_request
from workers.browser.driver import attach, forget
from workers.browser.errors import BrowserGone
from workers.browser.executor import ActionFailed, ActionOutcome, run_action
from workers.browser.grid import GridBackend
from workers.browser.local import LocalBackend

# Starts browsers of its own, through the suite's egress filter (the stack tier).
pytestmark = pytest.mark.usefixtures("egress_filter")


@dataclass
class Browser:
    handle: BrowserLocation
    display: Display
    session_id: str

    def act(self, type_: str, *, main_tab: str = "", **params: Any) -> ActionOutcome:
        """Run an action as a worker gets it: validated and canonical (normalize_action, as the web
        side does); `main_tab` as a worker passes it (recorded after the previous action)."""
        action = normalize_action(type_, params)
        return run_action(handle=self.handle, display=self.display, action=action, main_tab=main_tab)

    def js(self, script: str, *args: Any) -> Any:
        base = f"{self.handle.webdriver_url}/session/{self.handle.webdriver_session_id}"
        reply = webdriver_request("POST", f"{base}/execute/sync", body={"script": script, "args": list(args)})
        return reply["value"]

    def current_tab(self) -> str:
        base = f"{self.handle.webdriver_url}/session/{self.handle.webdriver_session_id}"
        return str(webdriver_request("GET", f"{base}/window")["value"])

    def wait_for(self, script: str, *, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(script)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.05)


# Not BROWSER_PROFILE_ROOT: the suite's Celery worker reconciles that root and would kill these
# browsers, which belong to no session row.
# Through the egress filter a refused upstream connection closes the browser's connection to
# the filter (workers/egress/filter.py), so Chromium reports an empty response.
CONNECTION_REFUSED = r"ERR_(CONNECTION_REFUSED|EMPTY_RESPONSE)"
_ROOT = Path(tempfile.mkdtemp(prefix="bf-executor-browsers-"))


def _start(display: Display, *, flavour: str = "chromium") -> Browser:
    session_id = f"exec-{uuid.uuid4().hex[:12]}"
    handle = LocalBackend(root=_ROOT).start(session_id=session_id, display=display, flavour=flavour)
    return Browser(handle=handle, display=display, session_id=session_id)


def _stop(browser: Browser) -> None:
    forget(browser.handle)
    LocalBackend(root=_ROOT).stop(browser.handle, session_id=browser.session_id)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    started = _start(Display(800, 600, 1.0))
    yield started
    _stop(started)


@pytest.fixture(scope="module")
def browser2x() -> Iterator[Browser]:
    started = _start(Display(800, 600, 2.0))
    yield started
    _stop(started)


@pytest.fixture
def throwaway_browser() -> Iterator[Browser]:
    started = _start(Display(640, 480, 1.0))
    yield started
    _stop(started)


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _log(browser: Browser) -> dict[str, Any]:
    return browser.js("return window.log")


def _wait_for_tabs(browser: Browser, count: int) -> list[str]:
    """Tabs that the page opens or closes come and go a moment after the click."""
    base = f"{browser.handle.webdriver_url}/session/{browser.handle.webdriver_session_id}"
    deadline = time.monotonic() + 5
    while len(handles := webdriver_request("GET", f"{base}/window/handles")["value"]) != count:
        assert time.monotonic() < deadline, f"expected {count} tabs, have {handles}"
        time.sleep(0.05)
    return [str(handle) for handle in handles]


# Navigation and page reads ----------------------------------------------------------------------


def test_navigate_returns_the_final_url_and_title(browser: Browser, pages_server: str) -> None:
    outcome = browser.act("navigate", url=f"{pages_server}/products.html")
    assert outcome.result == {"url": f"{pages_server}/products.html", "title": "Products - Page 1"}
    assert outcome.executed_tab_id == browser.current_tab()
    assert outcome.page_context is None and outcome.screenshot_png is None and outcome.display is None


def test_navigation_to_a_closed_port_is_an_action_failure_and_the_browser_carries_on(
    browser: Browser, pages_server: str
) -> None:
    with pytest.raises(ActionFailed, match=CONNECTION_REFUSED):
        browser.act("navigate", url=f"http://127.0.0.1:{free_port()}/")
    assert browser.act("navigate", url=f"{pages_server}/form.html").result["title"] == "Contact us"


def test_html_returns_the_current_dom_in_one_call(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    browser.js("document.getElementById('big').textContent = 'changed by script'")
    html = browser.act("html", auto_detect_encoding=True).result["html_content"]
    assert html.startswith("<html") and "changed by script" in html and html.rstrip().endswith("</html>")


def test_screenshot_is_the_display_size_times_its_scale(
    browser: Browser, browser2x: Browser, pages_server: str
) -> None:
    for each in (browser, browser2x):
        each.act("navigate", url=f"{pages_server}/buttons.html")
        outcome = each.act("screenshot", base64=False)
        assert outcome.result == {}
        assert _png_size(outcome.screenshot_png or b"") == (
            800 * each.display.scale,
            600 * each.display.scale,
        )


def test_include_context_screenshot_after_and_settle(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    browser.js("window.scrollTo(0, 120)")
    started = time.monotonic()
    outcome = browser.act("wait", ms=0, include_context=True, screenshot_after=True, settle_ms=150)
    assert time.monotonic() - started >= 0.15
    context = outcome.page_context or {}
    assert context == {
        "url": f"{pages_server}/buttons.html",
        "title": "Buttons",
        "tab_id": outcome.executed_tab_id,
        "is_main_tab": True,
        "viewport_width": 800,
        "viewport_height": 600,
        "page_width": 800,
        "page_height": 3000,
        "scroll_x": 0,
        "scroll_y": 120,
        "device_scale_factor": 1,
    }
    assert _png_size(outcome.screenshot_png or b"") == (800, 600)


def test_wait_sleeps_for_its_milliseconds(browser: Browser) -> None:
    started = time.monotonic()
    assert browser.act("wait", ms=200).result == {}
    assert 0.2 <= time.monotonic() - started < 1.5


# Pointer ----------------------------------------------------------------------------------------


def test_click_at_screenshot_coordinates_lands_on_the_button(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    browser.act("click", x=200, y=150, button="left")
    assert _log(browser)["clicks"] == [{"x": 200, "y": 150, "button": 0}]
    assert browser.js("return document.getElementById('big').textContent") == "Clicked 1"
    browser.act("click", x=50, y=50)  # beside the button
    assert len(_log(browser)["clicks"]) == 1


def test_click_at_scale_two_divides_screenshot_pixels_by_the_scale(
    browser2x: Browser, pages_server: str
) -> None:
    browser2x.act("navigate", url=f"{pages_server}/buttons.html")
    # The button is CSS 100..300 x 100..200, so screenshot pixels 200..600 x 200..400.
    browser2x.act("click", x=210, y=210)
    browser2x.act("click", x=590, y=390)
    browser2x.act("click", x=620, y=150)  # CSS (310, 75): beside it
    clicks = _log(browser2x)["clicks"]
    assert [(c["x"], c["y"]) for c in clicks] == [(105, 105), (295, 195)]


def test_double_right_middle_back_and_forward_clicks(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    browser.act("double_click", x=200, y=150)
    browser.act("right_click", x=200, y=150)
    for button in ("middle", "back", "forward"):
        browser.act("click", x=200, y=150, button=button)
    log = _log(browser)
    assert log["dblclicks"] == 1 and log["contextmenus"] == 1
    assert [up["button"] for up in log["ups"]] == [0, 0, 2, 1, 3, 4]


def test_click_outside_the_screen_is_refused(browser: Browser) -> None:
    with pytest.raises(ActionFailed, match="outside the screen"):
        browser.act("click", x=800, y=10)
    with pytest.raises(ActionFailed, match="outside the screen"):
        browser.act("move", x=-1, y=10)


def test_move_hovers(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    browser.act("move", x=150, y=420)
    assert _log(browser)["hovered"] is True


def test_drag_along_a_path_moves_the_box_into_the_zone(browser2x: Browser, pages_server: str) -> None:
    browser2x.act("navigate", url=f"{pages_server}/buttons.html")
    # Box centre CSS (490, 140) to the zone centre CSS (525, 375), at scale 2.
    browser2x.act("drag", path=[{"x": 980, "y": 280}, {"x": 1000, "y": 500}, {"x": 1050, "y": 750}])
    drag = _log(browser2x)["drag"]
    assert drag == {"x": 525, "y": 375, "moves": 2, "dropped": True}


def test_mouse_down_and_up_hold_the_button_across_calls_and_attaches(
    browser: Browser, pages_server: str
) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    browser.act("mouse_down", x=490, y=140, button="left")
    # Another worker process would attach afresh: the held button lives in the WebDriver session.
    forget(browser.handle)
    browser.act("move", x=510, y=300)
    forget(browser.handle)
    browser.act("mouse_up", x=525, y=375, button="left")
    log = _log(browser)
    assert log["drag"] == {"x": 525, "y": 375, "moves": 2, "dropped": True}
    assert [d["button"] for d in log["downs"]] == [0] and [u["button"] for u in log["ups"]] == [0]


def test_scroll_turns_the_wheel_at_a_point(browser: Browser, browser2x: Browser, pages_server: str) -> None:
    for each in (browser, browser2x):
        each.act("navigate", url=f"{pages_server}/buttons.html")
        scale = each.display.scale
        each.act("scroll", x=400 * scale, y=300 * scale, dx=0, dy=500)
        assert each.wait_for("return window.scrollY === 500 / window.devicePixelRatio") is True
        assert _log(each)["wheels"][0]["x"] == 400
        each.act("scroll", x=0, y=0, dx=0, dy=-10_000)
        assert each.wait_for("return window.scrollY === 0") is True


def test_viewport_resizes_the_tab_and_reports_the_new_display(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    try:
        outcome = browser.act("viewport", width=640, height=480, scale_factor=1.5, screenshot_after=True)
        assert outcome.display == Display(640, 480, 1.5)
        assert browser.js("return [innerWidth, innerHeight, devicePixelRatio]") == [640, 480, 1.5]
        assert _png_size(outcome.screenshot_png or b"") == (960, 720)
    finally:
        browser.act("viewport", width=800, height=600, scale_factor=1.0)
    assert browser.js("return [innerWidth, innerHeight, devicePixelRatio]") == [800, 600, 1]


# Keyboard ---------------------------------------------------------------------------------------


def _field_value(browser: Browser) -> str:
    return browser.js("return document.getElementById('field').value")


def test_type_goes_into_the_focused_field(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    browser.act("click", x=250, y=265)
    browser.act("type", text="Hello, wörld 中文 😀")
    assert _field_value(browser) == "Hello, wörld 中文 😀"
    assert "keydown:H:S" in _log(browser)["keys"]


def test_long_text_and_webdriver_key_characters_are_inserted_as_text(
    browser: Browser, pages_server: str
) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    text = "lorem ipsum " * 100
    started = time.monotonic()
    browser.act("point_and_type", x=250, y=265, text=text)
    assert _field_value(browser) == text
    assert time.monotonic() - started < 1  # key by key would take seconds
    browser.js("document.getElementById('field').value = ''; window.log.keys = []")
    # U+E007 is WebDriver's Enter key; typed text must stay text.
    browser.act("type", text="a\ue007b")
    assert _field_value(browser) == "a\ue007b"
    assert "keydown:Enter:" not in _log(browser)["keys"]


def test_point_and_type_clicks_then_types(browser2x: Browser, pages_server: str) -> None:
    browser2x.act("navigate", url=f"{pages_server}/buttons.html")
    browser2x.act("point_and_type", x=500, y=530, text="abc")
    assert _field_value(browser2x) == "abc"


def test_hotkey_presses_in_order_and_releases_in_reverse(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    browser.act("point_and_type", x=250, y=265, text="some text")
    browser.js("window.log.keys = []")
    browser.act("hotkey", keys=["CTRL", "a"])
    assert _log(browser)["keys"] == ["keydown:Control:C", "keydown:a:C", "keyup:a:C", "keyup:Control:"]
    browser.act("hotkey", keys=["Backspace"])
    assert _field_value(browser) == ""
    browser.act("type", text="x")
    browser.act("hotkey", keys=["ctrl+a"])
    browser.act("hotkey", keys=["Delete"])
    assert _field_value(browser) == ""


def test_hotkey_names_are_case_insensitive_with_aliases(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    browser.act("click", x=250, y=265)
    browser.js("window.log.keys = []")
    for key in ("Return", "esc", "ArrowUp", "PAGE_DOWN", "f5", "F13", "cmd", "space"):
        browser.act("hotkey", keys=[key])
    downs = [k for k in _log(browser)["keys"] if k.startswith("keydown")]
    assert downs == [
        "keydown:Enter:",
        "keydown:Escape:",
        "keydown:ArrowUp:",
        "keydown:PageDown:",
        "keydown:F5:",
        "keydown:F13:",
        "keydown:Meta:M",
        "keydown: :",
    ]
    with pytest.raises(ActionFailed, match="Unknown key"):
        browser.act("hotkey", keys=["hyperdrive"])


def test_key_down_holds_a_key_across_calls_and_attaches(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    browser.act("click", x=250, y=265)
    browser.act("key_down", key="shift")
    forget(browser.handle)
    browser.act("type", text="ab")
    browser.act("key_up", key="Shift")
    browser.act("type", text="c")
    assert _field_value(browser) == "ABc"
    keys = _log(browser)["keys"]
    assert keys[0] == "keydown:Shift:S" and "keyup:Shift:" in keys


# Tabs -------------------------------------------------------------------------------------------


def test_tabs_open_list_switch_and_close(browser: Browser, pages_server: str) -> None:
    first = browser.act("navigate", url=f"{pages_server}/buttons.html").executed_tab_id
    opened = browser.act("new_tab", url=f"{pages_server}/form.html")
    second = opened.result["tab_id"]
    assert opened.executed_tab_id == second != first
    assert opened.result["title"] == "Contact us"
    # The new tab has the session's display, not the bare window size.
    assert browser.js("return [innerWidth, innerHeight]") == [800, 600]
    tabs = browser.act("list_tabs").result["tabs"]
    assert tabs == [
        {"id": first, "url": f"{pages_server}/buttons.html", "title": "Buttons", "is_main_tab": False},
        {"id": second, "url": f"{pages_server}/form.html", "title": "Contact us", "is_main_tab": True},
    ]

    # tab_id runs one action in another tab without changing the main tab.
    other = browser.act("click", x=200, y=150, tab_id=first, include_context=True)
    assert other.executed_tab_id == first
    assert other.page_context and other.page_context["is_main_tab"] is False
    assert browser.act("wait", ms=0).executed_tab_id == second
    assert browser.js("return document.title") == "Contact us"

    switched = browser.act("switch_tab", tab_id=first)
    assert switched.executed_tab_id == first and switched.result["title"] == "Buttons"
    assert _log(browser)["clicks"] == [{"x": 200, "y": 150, "button": 0}]

    closed = browser.act("close_tab", tab_id=first, include_context=True)
    assert closed.result == {"closed_tab_id": first, "main_tab_id": second}
    assert closed.executed_tab_id == second and closed.page_context
    assert closed.page_context["title"] == "Contact us"
    with pytest.raises(ActionFailed, match="last tab"):
        browser.act("close_tab", tab_id=second)
    with pytest.raises(ActionFailed, match="No tab with id"):
        browser.act("switch_tab", tab_id="no-such-tab")
    with pytest.raises(ActionFailed, match="No tab with id"):
        browser.act("html", tab_id="no-such-tab")


def test_a_tab_the_page_opened_gets_the_display_when_used(browser: Browser, pages_server: str) -> None:
    main = browser.act("navigate", url=f"{pages_server}/tabs.html").executed_tab_id
    browser.act("step", action="click", target={"selector": "#popup-link"})
    popup = next(tab for tab in _wait_for_tabs(browser, 2) if tab != main)
    try:
        context = browser.act("wait", ms=0, tab_id=popup, include_context=True).page_context or {}
        assert (context["viewport_width"], context["viewport_height"]) == (800, 600)
        assert context["url"] == f"{pages_server}/tabs.html?popup=1" and context["is_main_tab"] is False
    finally:
        browser.act("close_tab", tab_id=popup)
    assert [tab["id"] for tab in browser.act("list_tabs").result["tabs"]] == [main]


def test_when_the_page_closes_the_main_tab_another_tab_takes_over(
    browser: Browser, pages_server: str
) -> None:
    main = browser.act("navigate", url=f"{pages_server}/tabs.html").executed_tab_id
    browser.act("step", action="click", target={"selector": "#popup-link"})
    popup = next(tab for tab in _wait_for_tabs(browser, 2) if tab != main)
    browser.act("switch_tab", tab_id=popup)
    button = next(e for e in browser.act("observe").result["elements"] if e["text"] == "Close this tab")
    box = button["bbox"]
    # A tab opened by the page may close itself.
    browser.act("click", x=box["x"] + box["width"] / 2, y=box["y"] + box["height"] / 2)
    assert _wait_for_tabs(browser, 1) == [main]
    outcome = browser.act("wait", ms=0, include_context=True)
    assert outcome.executed_tab_id == main
    assert outcome.page_context and outcome.page_context["is_main_tab"] is True
    assert outcome.page_context["viewport_width"] == 800


def test_with_the_recorded_main_tab_an_action_sends_only_its_own_commands(
    browser: Browser, pages_server: str
) -> None:
    main = browser.act("navigate", url=f"{pages_server}/flow.html").main_tab
    driver = attach(browser.handle)
    before = driver.commands_done
    outcome = browser.act("html", main_tab=main)
    assert driver.commands_done - before == 1  # GET /source, no GET /window
    assert outcome.executed_tab_id == main and outcome.main_tab == main
    before = driver.commands_done
    browser.act("html")
    assert driver.commands_done - before == 2  # not recorded: the action asks for the current tab


def test_when_the_page_closed_the_recorded_main_tab_the_action_runs_in_the_new_one(
    browser: Browser, pages_server: str
) -> None:
    # What a worker does: pass the main tab recorded after the previous action, record the new one.
    recorded = browser.act("navigate", url=f"{pages_server}/tabs.html").main_tab

    def act(type_: str, **params: Any) -> ActionOutcome:
        nonlocal recorded
        outcome = browser.act(type_, main_tab=recorded, **params)
        recorded = outcome.main_tab
        return outcome

    main = recorded
    act("step", action="click", target={"selector": "#popup-link"})
    popup = next(tab for tab in _wait_for_tabs(browser, 2) if tab != main)
    assert act("switch_tab", tab_id=popup).main_tab == popup == browser.current_tab()
    assert act("html").executed_tab_id == popup
    # The popup closes itself from a timer: the recorded main tab is gone when the next action comes.
    browser.js("setTimeout(() => window.close(), 0)")
    assert _wait_for_tabs(browser, 1) == [main]
    outcome = act("navigate", url=f"{pages_server}/flow.html?after-close")
    assert outcome.executed_tab_id == main and outcome.main_tab == main == browser.current_tab()
    assert browser.js("return location.search") == "?after-close"
    assert act("wait", ms=0, include_context=True).page_context["is_main_tab"] is True


def test_a_new_tab_whose_page_fails_to_load_is_closed(browser: Browser, pages_server: str) -> None:
    main = browser.act("navigate", url=f"{pages_server}/tabs.html").main_tab
    refused = f"http://127.0.0.1:{free_port()}/nothing-listens-here"
    with pytest.raises(ActionFailed, match=CONNECTION_REFUSED + r".*the new tab was closed"):
        browser.act("new_tab", url=refused, main_tab=main)
    assert _wait_for_tabs(browser, 1) == [main] and browser.current_tab() == main
    assert browser.act("wait", ms=0).executed_tab_id == main


def test_too_many_tabs_are_refused(browser: Browser, pages_server: str) -> None:
    main = browser.act("navigate", url=f"{pages_server}/tabs.html").executed_tab_id
    opened = [browser.act("new_tab").result["tab_id"] for _ in range(4)]
    try:
        with pytest.raises(ActionFailed, match="at most 5 tabs"):
            browser.act("new_tab")
    finally:
        for tab_id in opened:
            browser.act("close_tab", tab_id=tab_id)
    assert browser.act("wait", ms=0).executed_tab_id == main


# Observe, step, scrape --------------------------------------------------------------------------


def test_observe_lists_visible_interactive_elements_with_screenshot_boxes(
    browser: Browser, browser2x: Browser, pages_server: str
) -> None:
    for each in (browser, browser2x):
        each.act("navigate", url=f"{pages_server}/products.html")
        page = each.act("observe").result
        assert page["url"] == f"{pages_server}/products.html" and page["title"] == "Products - Page 1"
        assert page["viewport"] == {"width": 800, "height": 600, "scale": each.display.scale}
        assert page["truncated"] is False
        by_text = {(e["role"], e["text"]): e for e in page["elements"]}
        link = by_text[("link", "Espresso Machine")]
        assert link["href"] == f"{pages_server}/products/espresso-machine.html"
        assert link["tag"] == "a" and link["selector"]
        assert ("link", "Next") in by_text and ("searchbox", "Search products") in by_text
        assert by_text[("button", "Sold out")]["disabled"] is True
        assert "Secret promo text that is not shown" not in {e["text"] for e in page["elements"]}
        # Boxes are screenshot pixels: CSS boxes times the scale.
        button = by_text[("button", "Add to cart")]
        css = each.js(
            "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
            "return [r.left, r.top, r.width, r.height]",
            button["selector"],
        )
        # Rounded half up, as the page's Math.round does.
        assert [button["bbox"][k] for k in ("x", "y", "width", "height")] == [
            math.floor(v * each.display.scale + 0.5) for v in css
        ]
        assert (
            each.js(f"return document.querySelector('[data-bf-id={button['id']}]').textContent")
            == "Add to cart"
        )
        # A click at the centre of a reported box hits that element.
        box = button["bbox"]
        each.act("click", x=box["x"] + box["width"] / 2, y=box["y"] + box["height"] / 2)
        assert each.js("return document.body.dataset.cart") == "1"


def test_observe_keeps_ids_stable_and_truncates_to_max_elements(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/products.html")
    first = browser.act("observe").result["elements"]
    again = browser.act("observe").result["elements"]
    assert [e["id"] for e in first] == [e["id"] for e in again]
    few = browser.act("observe", max_elements=3).result
    assert len(few["elements"]) == 3 and few["truncated"] is True


def test_observe_finds_labels_of_hidden_inputs_and_reports_field_state(
    browser: Browser, pages_server: str
) -> None:
    browser.act("navigate", url=f"{pages_server}/form.html")
    elements = browser.act("observe").result["elements"]
    by_text = {e["text"]: e for e in elements}
    assert by_text["I agree to the terms"]["tag"] == "label"
    assert by_text["Full name"]["role"] == "textbox" and by_text["Full name"]["selector"] == "#name"
    assert by_text["Email address"]["selector"] == 'input[name="email"]'
    assert by_text["Basic"]["checked"] is True and by_text["Pro"]["checked"] is False
    assert by_text["Country"]["role"] == "combobox"


def test_step_fills_and_submits_a_form_by_selector_element_id_and_text(
    browser: Browser, pages_server: str
) -> None:
    browser.act("navigate", url=f"{pages_server}/form.html")
    filled = browser.act("step", action="fill", target={"selector": "#name"}, value="Ada Lovelace").result
    assert filled["step"]["element"]["selector"] == "#name"
    assert filled["page"]["url"] == f"{pages_server}/form.html" and filled["page"]["elements"]
    newsletter = next(e for e in filled["page"]["elements"] if e["text"] == "Send me the newsletter")

    browser.act("step", action="fill", target={"text": "Email address"}, value="ada@example.com")
    selected = browser.act("step", action="select", target={"text": "Country"}, value="France").result
    assert selected["step"]["selected"] == {"value": "fr", "text": "France"}
    browser.act("step", action="click", target={"element_id": newsletter["id"]})
    browser.act("step", action="click", target={"text": "I agree to the terms"})
    browser.act("step", action="fill", target={"selector": "input[name=plan][value=pro]"}, value="true")
    browser.act("step", action="fill", target={"selector": "#message"}, value="Hello\nthere")
    long_message = "Long message. " * 60
    browser.act("step", action="fill", target={"text": "Message"}, value=long_message)
    assert browser.js("return document.getElementById('message').value") == long_message
    browser.act("step", action="fill", target={"selector": "#message"}, value="Hello\nthere")
    browser.act("step", action="fill", target={"text": "Preferred date"}, value="2026-03-01")
    # A second fill replaces what the field held.
    browser.act("step", action="fill", target={"selector": "#name"}, value="Ada King")
    done = browser.act("step", action="click", target={"text": "Send message"}).result
    assert done["step"]["element"]["selector"] == 'button[data-testid="send"]'

    waited = browser.act("step", action="wait_for", target={"text": "Submitted:"}, timeout_ms=2000).result
    submitted = json.loads(waited["step"]["element"]["text"].removeprefix("Submitted: "))
    assert submitted == {
        "name": "Ada King",
        "email": "ada@example.com",
        "country": "fr",
        "plan": "pro",
        "newsletter": "on",
        "terms": "on",
        "message": "Hello\nthere",
        "when": "2026-03-01",
    }


def test_step_press_hover_and_scroll_into_view(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    browser.act("step", action="press", target={"selector": "#field"}, key="Shift+a")
    assert _field_value(browser) == "A"
    browser.act("step", action="hover", target={"text": "hover me"})
    assert _log(browser)["hovered"] is True
    page = browser.act("step", action="scroll_into_view", target={"selector": "#bottom"}).result["page"]
    assert page["scroll"]["y"] > 2000
    assert any(e["text"] == "Bottom button" and e["in_viewport"] for e in page["elements"])


def test_step_waits_for_an_element_that_appears_later(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/buttons.html")
    browser.js(
        "setTimeout(() => { const b = document.createElement('button'); b.id = 'late';"
        " b.textContent = 'Late'; document.body.append(b); }, 300)"
    )
    result = browser.act("step", action="click", target={"selector": "#late"}, timeout_ms=3000).result
    assert result["step"]["element"]["text"] == "Late"


def test_step_errors_are_action_failures(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/form.html")
    started = time.monotonic()
    with pytest.raises(ActionFailed, match=r"No element matches selector '#missing' within 200 ms"):
        browser.act("step", action="click", target={"selector": "#missing"}, timeout_ms=200)
    assert time.monotonic() - started < 2
    with pytest.raises(ActionFailed, match="Invalid CSS selector"):
        browser.act("step", action="click", target={"selector": "div[[["}, timeout_ms=200)
    with pytest.raises(ActionFailed, match="No option"):
        browser.act("step", action="select", target={"selector": "#country"}, value="Atlantis")
    with pytest.raises(ActionFailed, match="not visible"):
        browser.act("step", action="click", target={"selector": "input[name=terms]"}, timeout_ms=200)
    with pytest.raises(ActionFailed, match="No element matches element_id 'e999'"):
        browser.act("step", action="click", target={"element_id": "e999"}, timeout_ms=0)


def test_scrape_with_a_nested_list_schema_returns_absolute_links(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/products.html")
    schema = {
        "fields": {
            "heading": "h1",
            "products": {
                "selector": ".product",
                "list": True,
                "fields": {
                    "name": ".name",
                    "price": {"selector": ".price"},
                    "url": {"selector": ".name a", "attr": "href"},
                    "image": {"selector": "img", "attr": "src"},
                    "sku": {"attr": "data-sku"},
                    "rating": {"selector": ".rating", "attr": "data-rating"},
                    "tags": {"selector": ".tags li", "list": True},
                },
            },
            "pages": {"selector": ".pagination a", "list": True, "attr": "href"},
            "missing": ".does-not-exist",
            "missing_list": {"selector": ".does-not-exist", "list": True},
        }
    }
    # "sku" reads the item's own attribute (no selector): the page script can, the API does not
    # accept it (sessions/action_specs.py wants a selector), so this runs the canonical shape as is.
    action = {"type": "scrape", "schema": schema, "format": "none"}
    result = run_action(handle=browser.handle, display=browser.display, action=action).result
    assert set(result) == {"url", "title", "data"}
    data = result["data"]
    assert data["heading"] == "Kitchen & Coffee"
    assert data["products"][0] == {
        "name": "Espresso Machine",
        "price": "$199.00",
        "url": f"{pages_server}/products/espresso-machine.html",
        "image": f"{pages_server}/img/espresso.png",
        "sku": "ESP-1",
        "rating": "4.5",
        "tags": ["kitchen", "coffee"],
    }
    assert data["products"][2]["url"] == f"{pages_server}/shop/kettle?ref=list"
    assert data["products"][2]["rating"] is None and data["products"][2]["tags"] == []
    assert data["pages"][-1] == f"{pages_server}/products.html?page=2"
    assert data["missing"] is None and data["missing_list"] == []


def test_scrape_schema_with_a_list_selector_at_the_top(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/products.html")
    schema = {"selector": ".product", "list": True, "fields": {"name": "h2", "price": ".price"}}
    data = browser.act("scrape", schema=schema, format="text").result
    assert data["data"] == [
        {"name": "Espresso Machine", "price": "$199.00"},
        {"name": "Burr Grinder", "price": "$89.50"},
        {"name": "Gooseneck Kettle", "price": "$45.00"},
    ]
    assert "Kitchen & Coffee" in data["text"] and data["truncated"] is False


def test_scrape_markdown_and_text(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/products.html")
    markdown = browser.act("scrape").result["markdown"]
    assert "# Kitchen & Coffee" in markdown
    assert "Showing **3** of 9 products. *Free shipping* over $50." in markdown
    assert f"## [Espresso Machine]({pages_server}/products/espresso-machine.html)" in markdown
    assert f"![Espresso machine]({pages_server}/img/espresso.png)" in markdown
    # Lists nest under the item that holds them.
    assert "\n  - kitchen\n  - coffee\n  Add to cart\n- [![Burr grinder]" in markdown
    assert "| Model | Power |\n| --- | --- |\n| Espresso Machine | 1350 W |" in markdown
    assert "Secret promo" not in markdown and "document.addEventListener" not in markdown

    text = browser.act("scrape", format="text", selector=".product").result
    assert text["text"].startswith("Espresso Machine") and "Burr Grinder" not in text["text"]
    assert "markdown" not in text


def test_scrape_errors_are_action_failures(browser: Browser, pages_server: str) -> None:
    browser.act("navigate", url=f"{pages_server}/products.html")
    with pytest.raises(ActionFailed, match=r"schema\.price: invalid CSS selector"):
        browser.act("scrape", schema={"fields": {"price": "[[["}})
    with pytest.raises(ActionFailed, match="No element matches"):
        browser.act("scrape", selector="#nowhere", format="text")


# A browser that is gone -------------------------------------------------------------------------


def _chromium_pid(profile_dir: str) -> int:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if f"--user-data-dir={profile_dir}/profile" in args and not any(
            a.startswith("--type=") for a in args
        ):
            return int(entry.name)
    raise AssertionError("no Chromium browser process found")


def test_a_killed_chromium_is_browser_gone(throwaway_browser: Browser, pages_server: str) -> None:
    throwaway_browser.act("navigate", url=f"{pages_server}/buttons.html")
    os.kill(_chromium_pid(throwaway_browser.handle.profile_dir), signal.SIGKILL)
    with pytest.raises(BrowserGone):
        throwaway_browser.act("click", x=10, y=10)


def test_a_killed_driver_is_browser_gone(throwaway_browser: Browser, pages_server: str) -> None:
    throwaway_browser.act("navigate", url=f"{pages_server}/buttons.html")
    assert throwaway_browser.handle.browser_pid
    os.killpg(throwaway_browser.handle.browser_pid, signal.SIGKILL)
    with pytest.raises(BrowserGone):
        throwaway_browser.act("html")


# Through Selenium Grid ---------------------------------------------------------------------------


@pytest.mark.grid
def test_actions_that_need_devtools_and_held_input_work_through_grid(
    grid_url: str, pages_server: str
) -> None:
    backend = GridBackend(grid_url)
    display = Display(800, 600, 2.0)
    handle = backend.start(session_id="exec-grid", display=display)
    grid = Browser(handle=handle, display=display, session_id="exec-grid")
    try:
        grid.act("navigate", url=f"{pages_server}/buttons.html")
        grid.act("click", x=400, y=300)
        assert _log(grid)["clicks"] == [{"x": 200, "y": 150, "button": 0}]
        grid.act("click", x=500, y=530)
        grid.act("key_down", key="Shift")
        forget(handle)
        grid.act("type", text="ab")
        grid.act("key_up", key="Shift")
        assert _field_value(grid) == "AB"
        assert _png_size(grid.act("screenshot").screenshot_png or b"") == (1600, 1200)

        # Emulation and the tab listing are DevTools commands, forwarded by the Grid.
        opened = grid.act("new_tab", url=f"{pages_server}/form.html", include_context=True)
        assert opened.page_context and opened.page_context["viewport_width"] == 800
        assert opened.page_context["device_scale_factor"] == 2
        tabs = grid.act("list_tabs").result["tabs"]
        assert [(tab["title"], tab["is_main_tab"]) for tab in tabs] == [
            ("Buttons", False),
            ("Contact us", True),
        ]
        resized = grid.act("viewport", width=640, height=480, scale_factor=1.0)
        assert resized.display == Display(640, 480, 1.0)
        assert grid.js("return [innerWidth, innerHeight, devicePixelRatio]") == [640, 480, 1]
    finally:
        backend.stop(handle, session_id="exec-grid")
    with pytest.raises(BrowserGone):
        grid.act("html")
    forget(handle)
