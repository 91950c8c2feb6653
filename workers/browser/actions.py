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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from selenium.common.exceptions import (
    InvalidSessionIdException,
    JavascriptException,
    MoveTargetOutOfBoundsException,
    NoSuchWindowException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.remote.command import Command

from workers.browser import page_scripts
from workers.browser.base import BrowserHandle, Display, webdriver_session_alive
from workers.browser.driver import COMMAND_TIMEOUT, AttachedDriver, attach, forget
from workers.browser.errors import BrowserError, BrowserGone, TransientBrowserError

# Tabs per session, as the contract's docs promise.
MAX_TABS = 5
OBSERVE_DEFAULT_ELEMENTS = 200
OBSERVE_MAX_ELEMENTS = 1000
STEP_DEFAULT_TIMEOUT_MS = 5_000
STEP_MAX_TIMEOUT_MS = 20_000
# Element lookups poll inside the page, in async scripts of at most this long: scripts time out
# after 20 s (options.py).
STEP_POLL_SLICE_MS = 5_000
SCRAPE_MAX_CHARS = 200_000
SCRAPE_MAX_LIST_ITEMS = 5_000
# Each typed character is a key down and up, about 3 ms in chromedriver. Longer text is inserted
# as one text input (like a paste) so that a long `type` stays inside the request timeout.
TYPE_MAX_KEYSTROKES = 500


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
class _Run:
    """One action in flight."""

    driver: AttachedDriver
    display: Display
    main_tab: str  # the session's current window; tab operations move it
    tab: str  # the tab the action runs in
    screenshot_png: bytes | None = None
    new_display: Display | None = None


Params = dict[str, Any]
Handler = Callable[[_Run, Params], dict[str, Any]]


def run_action(
    *, handle: BrowserHandle, display: Display, action: dict[str, Any], main_tab: str = ""
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
        return _execute(driver, display, kind, handler, action, main=_current_tab(driver, display))
    except BrowserError:
        raise
    except WebDriverException as exc:
        raise _from_webdriver(exc, handle) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise _from_connection(exc, handle) from exc


def _execute(
    driver: AttachedDriver, display: Display, kind: str, handler: Handler, action: Params, *, main: str
) -> ActionOutcome:
    # Tab operations name their tab in tab_id as a parameter; every other action runs there.
    wanted = main if kind in _TAB_HANDLERS else str(action.get("tab_id") or main)
    run = _Run(driver=driver, display=display, main_tab=main, tab=wanted)
    with contextlib.ExitStack() as stack:
        if run.tab != run.main_tab:
            stack.enter_context(_visiting(driver, run.tab, back_to=run.main_tab))
            _ensure_display(driver, run.tab, display)
        result = handler(run, action)
        settle_ms = action.get("settle_ms") or 0
        if settle_ms > 0:
            time.sleep(settle_ms / 1000)
        context = _page_context(run) if action.get("include_context") else None
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


@contextlib.contextmanager
def _visiting(driver: AttachedDriver, tab_id: str, *, back_to: str) -> Iterator[None]:
    """Make `tab_id` the current window for a while; the main tab stays `back_to`."""
    _switch(driver, tab_id)
    try:
        yield
    except BaseException:
        # The original error matters more than a failed switch back (the tab may be gone).
        with contextlib.suppress(BrowserError, WebDriverException, urllib3.exceptions.HTTPError):
            _switch(driver, back_to)
        raise
    _switch(driver, back_to)


def _current_tab(driver: AttachedDriver, display: Display) -> str:
    try:
        return str(driver.current_window_handle)
    except NoSuchWindowException:
        # The page closed its own tab (window.close()): another tab becomes the main one.
        handles = driver.window_handles
        if not handles:
            raise BrowserGone("The browser has no tabs left") from None
        _make_main(driver, handles[-1], display)
        return str(handles[-1])


def _switch(driver: AttachedDriver, tab_id: str) -> None:
    # Not driver.switch_to.window: on a miss it visits every tab looking for a window *name*.
    try:
        driver.execute(Command.SWITCH_TO_WINDOW, {"handle": tab_id})
    except NoSuchWindowException:
        raise ActionFailed(f"No tab with id {tab_id!r}") from None


def _ensure_display(driver: AttachedDriver, tab_id: str, display: Display) -> None:
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


def _make_main(driver: AttachedDriver, tab_id: str, display: Display) -> None:
    _switch(driver, tab_id)
    # A tab in the background has no focus, so key events and focus handlers would misbehave.
    driver.cdp("Page.bringToFront")
    driver.tab_displays.pop(tab_id, None)
    _ensure_display(driver, tab_id, display)


# Errors -----------------------------------------------------------------------------------------

# chromedriver and Grid messages that mean the browser or the session is gone for good.
_GONE_MARKERS = (
    "invalid session id",
    "no such session",
    "unable to find session",
    "session deleted",
    "chrome not reachable",
    "not connected to devtools",
    "cannot connect to chrome",
    "browser has closed the connection",
)


def _message(exc: WebDriverException) -> str:
    text = (exc.msg or str(exc) or type(exc).__name__).strip()
    # The first line, without Selenium's link to its troubleshooting pages.
    first = text.split("\n", 1)[0].split("; For documentation on this error", 1)[0].strip()
    return first.removeprefix("unknown error: ")[:500]


def _from_webdriver(exc: WebDriverException, handle: BrowserHandle) -> BrowserError:
    message = _message(exc)
    lowered = message.lower()
    if isinstance(exc, InvalidSessionIdException) or any(marker in lowered for marker in _GONE_MARKERS):
        forget(handle)
        return BrowserGone(f"The browser is gone: {message}")
    if isinstance(exc, MoveTargetOutOfBoundsException):
        return ActionFailed(f"The point is outside the viewport: {message}")
    if isinstance(exc, NoSuchWindowException):
        return ActionFailed(f"The tab was closed: {message}")
    if isinstance(exc, TimeoutException):
        return ActionFailed(f"Timed out: {message}")
    # Navigation errors (net::ERR_*), element and script errors: the page's problem.
    return ActionFailed(message)


def _from_connection(exc: urllib3.exceptions.HTTPError, handle: BrowserHandle) -> BrowserError:
    # Whatever went wrong, the pooled connections are suspect: the next action attaches afresh.
    forget(handle)
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        # The driver is there but busy (a hung renderer): the action failed, the session lives.
        return ActionFailed(f"The browser did not answer within {COMMAND_TIMEOUT.read_timeout:.0f} s")
    if not webdriver_session_alive(handle):
        return BrowserGone(f"The browser's driver is unreachable: {reason}")
    return TransientBrowserError(f"The connection to the browser's driver dropped: {reason}")


def _page_error(reply: Any) -> None:
    """Scripts report page-side problems as {"error": kind, "message": ...}."""
    if isinstance(reply, dict) and reply.get("error"):
        raise ActionFailed(str(reply.get("message") or reply["error"]))


# Parameters -------------------------------------------------------------------------------------


def _number(params: Params, name: str) -> float:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ActionFailed(f"{name} must be a number")
    return float(value)


def _css_point(run: _Run, params: Params) -> tuple[float, float]:
    """A point in screenshot pixels as CSS pixels, refused when it is off the screen."""
    px, py = _number(params, "x"), _number(params, "y")
    scale = run.display.scale
    width, height = run.display.width * scale, run.display.height * scale
    if not (0 <= px < width and 0 <= py < height):
        raise ActionFailed(
            f"Point ({px:g}, {py:g}) is outside the screen ({width:g}x{height:g} screenshot pixels)"
        )
    return px / scale, py / scale


# Pointer ----------------------------------------------------------------------------------------

# W3C button numbers. "wheel" is what OpenAI's computer-use actions call the middle button.
_BUTTONS = {"left": 0, "middle": 1, "wheel": 1, "right": 2, "back": 3, "forward": 4}


def _button(params: Params, default: str = "left") -> int:
    name = str(params.get("button") or default).lower()
    if name not in _BUTTONS:
        raise ActionFailed(f"Unknown mouse button {name!r}")
    return _BUTTONS[name]


def _move(point: tuple[float, float]) -> dict[str, Any]:
    return {"type": "pointerMove", "x": point[0], "y": point[1], "origin": "viewport", "duration": 0}


def _perform_pointer(run: _Run, steps: list[dict[str, Any]]) -> None:
    # One id and type for every call: chromedriver keeps this source's state (the position and
    # held buttons) in the session between calls, which is what makes mouse_down/mouse_up work.
    source = {"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": steps}
    run.driver.execute(Command.W3C_ACTIONS, {"actions": [source]})


def _click(run: _Run, params: Params, *, button: int | None = None, count: int = 1) -> dict[str, Any]:
    pressed = _button(params) if button is None else button
    steps = [_move(_css_point(run, params))]
    for _ in range(count):
        steps += [{"type": "pointerDown", "button": pressed}, {"type": "pointerUp", "button": pressed}]
    _perform_pointer(run, steps)
    return {}


def _do_click(run: _Run, params: Params) -> dict[str, Any]:
    return _click(run, params)


def _do_double_click(run: _Run, params: Params) -> dict[str, Any]:
    return _click(run, params, button=0, count=2)


def _do_right_click(run: _Run, params: Params) -> dict[str, Any]:
    return _click(run, params, button=2)


def _do_move(run: _Run, params: Params) -> dict[str, Any]:
    _perform_pointer(run, [_move(_css_point(run, params))])
    return {}


def _do_drag(run: _Run, params: Params) -> dict[str, Any]:
    path = params.get("path")
    if not isinstance(path, list) or len(path) < 2 or not all(isinstance(p, dict) for p in path):
        raise ActionFailed("drag needs a path of at least two {x, y} points")
    points = [_css_point(run, p) for p in path]
    steps = [_move(points[0]), {"type": "pointerDown", "button": 0}]
    steps += [_move(point) for point in points[1:]]
    steps.append({"type": "pointerUp", "button": 0})
    _perform_pointer(run, steps)
    return {}


def _pointer_hold(run: _Run, params: Params, kind: str) -> dict[str, Any]:
    steps = []
    # The point is optional: without one the button goes down or up where the mouse is.
    if params.get("x") is not None and params.get("y") is not None:
        steps.append(_move(_css_point(run, params)))
    steps.append({"type": kind, "button": _button(params)})
    _perform_pointer(run, steps)
    return {}


def _do_mouse_down(run: _Run, params: Params) -> dict[str, Any]:
    return _pointer_hold(run, params, "pointerDown")


def _do_mouse_up(run: _Run, params: Params) -> dict[str, Any]:
    return _pointer_hold(run, params, "pointerUp")


def _do_scroll(run: _Run, params: Params) -> dict[str, Any]:
    x, y = _css_point(run, params)
    scale = run.display.scale
    dx = _number(params, "dx") if params.get("dx") is not None else 0.0
    dy = _number(params, "dy") if params.get("dy") is not None else 0.0
    # Wheel actions take whole CSS pixels.
    wheel = {
        "type": "scroll",
        "x": int(x),
        "y": int(y),
        "deltaX": round(dx / scale),
        "deltaY": round(dy / scale),
        "origin": "viewport",
        "duration": 0,
    }
    run.driver.execute(
        Command.W3C_ACTIONS, {"actions": [{"type": "wheel", "id": "wheel", "actions": [wheel]}]}
    )
    return {}


# Keyboard ---------------------------------------------------------------------------------------

# W3C WebDriver key code points, by lower-case name without "-", "_" or spaces.
_W3C_KEYS = {
    "backspace": "\ue003",
    "tab": "\ue004",
    "clear": "\ue005",
    "enter": "\ue007",
    "return": "\ue007",
    "kpenter": "\ue007",
    "shift": "\ue008",
    "control": "\ue009",
    "ctrl": "\ue009",
    "alt": "\ue00a",
    "option": "\ue00a",
    "pause": "\ue00b",
    "escape": "\ue00c",
    "esc": "\ue00c",
    "space": " ",
    "pageup": "\ue00e",
    "pagedown": "\ue00f",
    "end": "\ue010",
    "home": "\ue011",
    "arrowleft": "\ue012",
    "left": "\ue012",
    "arrowup": "\ue013",
    "up": "\ue013",
    "arrowright": "\ue014",
    "right": "\ue014",
    "arrowdown": "\ue015",
    "down": "\ue015",
    "insert": "\ue016",
    "delete": "\ue017",
    "del": "\ue017",
    "meta": "\ue03d",
    "cmd": "\ue03d",
    "command": "\ue03d",
    "super": "\ue03d",
    "win": "\ue03d",
    "windows": "\ue03d",
    **{f"f{n}": chr(0xE031 + n - 1) for n in range(1, 13)},
}
# W3C has no code points above F12; these go through DevTools (VK_F13 is 0x7C).
_CDP_KEYS = {f"f{n}": (f"F{n}", 0x7C + n - 13) for n in range(13, 25)}
# DevTools modifier bits, for those keys when a combination holds modifiers.
_MODIFIER_BITS = {"\ue00a": 1, "\ue009": 2, "\ue03d": 4, "\ue008": 8}

Key = str | tuple[str, int]  # a W3C value, or a DevTools (key, virtual key code)


def _key(name: str) -> Key:
    if len(name) == 1:
        return name
    normal = name.lower().replace("-", "").replace("_", "").replace(" ", "")
    if normal in _W3C_KEYS:
        return _W3C_KEYS[normal]
    if normal in _CDP_KEYS:
        return _CDP_KEYS[normal]
    raise ActionFailed(f"Unknown key {name!r}")


def _combo(keys: list[Any]) -> list[Key]:
    """Keys of a chord; "ctrl+c" as one entry is split, "+" alone is the plus key."""
    names: list[str] = []
    for entry in keys:
        text = str(entry)
        parts = text.split("+")
        names += parts if len(text) > 1 and all(parts) else [text]
    if not names:
        raise ActionFailed("No keys given")
    return [_key(name) for name in names]


def _press_keys(run: _Run, events: list[tuple[str, Key]]) -> None:
    """Key events in order: runs of W3C ones as one actions call, DevTools ones between them."""
    batch: list[dict[str, Any]] = []
    held = 0

    def flush() -> None:
        if batch:
            source = {"type": "key", "id": "keyboard", "actions": list(batch)}
            run.driver.execute(Command.W3C_ACTIONS, {"actions": [source]})
            batch.clear()

    for kind, key in events:
        if isinstance(key, str):
            batch.append({"type": kind, "value": key})
            bit = _MODIFIER_BITS.get(key, 0)
            held = held | bit if kind == "keyDown" else held & ~bit
            continue
        flush()
        run.driver.cdp(
            "Input.dispatchKeyEvent",
            {
                "type": "rawKeyDown" if kind == "keyDown" else "keyUp",
                "key": key[0],
                "code": key[0],
                "windowsVirtualKeyCode": key[1],
                "modifiers": held,
            },
        )
    flush()


def _chord(run: _Run, keys: list[Key]) -> None:
    events = [("keyDown", k) for k in keys] + [("keyUp", k) for k in reversed(keys)]
    _press_keys(run, events)


def _do_hotkey(run: _Run, params: Params) -> dict[str, Any]:
    keys = params.get("keys")
    if not isinstance(keys, list):
        raise ActionFailed("hotkey needs a list of keys")
    _chord(run, _combo(keys))
    return {}


def _do_key_down(run: _Run, params: Params) -> dict[str, Any]:
    _press_keys(run, [("keyDown", _key(str(params.get("key", ""))))])
    return {}


def _do_key_up(run: _Run, params: Params) -> dict[str, Any]:
    _press_keys(run, [("keyUp", _key(str(params.get("key", ""))))])
    return {}


def _typed_keys(text: str) -> list[str]:
    # A newline is the Enter key, as a person typing it would press it.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [_W3C_KEYS["enter"] if ch == "\n" else _W3C_KEYS["tab"] if ch == "\t" else ch for ch in text]


def _needs_text_input(text: str) -> bool:
    """Long text, or text holding characters that WebDriver would read as special keys."""
    return len(text) > TYPE_MAX_KEYSTROKES or any("\ue000" <= ch <= "\ue05d" for ch in text)


def _type_text(run: _Run, text: str) -> None:
    if not text:
        return
    if _needs_text_input(text):
        run.driver.cdp("Input.insertText", {"text": text})
        return
    steps: list[dict[str, Any]] = []
    for key in _typed_keys(text):
        steps += [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]
    run.driver.execute(
        Command.W3C_ACTIONS, {"actions": [{"type": "key", "id": "keyboard", "actions": steps}]}
    )


def _do_type(run: _Run, params: Params) -> dict[str, Any]:
    _type_text(run, str(params.get("text") or ""))
    return {}


def _do_point_and_type(run: _Run, params: Params) -> dict[str, Any]:
    _click(run, params, button=0)
    _type_text(run, str(params.get("text") or ""))
    return {}


# Page -------------------------------------------------------------------------------------------


def _do_navigate(run: _Run, params: Params) -> dict[str, Any]:
    url = str(params.get("url") or "")
    if not url:
        raise ActionFailed("navigate needs a url")
    run.driver.get(url)
    page = dict(run.driver.execute_script(page_scripts.URL_AND_TITLE))
    _raise_if_error_page(run, page, url)
    return page


def _raise_if_error_page(run: _Run, page: dict[str, Any], url: str) -> None:
    """Chromium answers a failed load (refused, DNS, TLS) with its own error page, not an error."""
    if not str(page.get("url", "")).startswith("chrome-error://"):
        return
    code = run.driver.execute_script(
        "const e = document.querySelector('.error-code'); return e ? e.textContent.trim() : '';"
    )
    raise ActionFailed(f"Could not load {url}: {code or 'the page failed to load'}")


def _do_viewport(run: _Run, params: Params) -> dict[str, Any]:
    scale = params.get("scale_factor")
    display = Display(
        width=int(_number(params, "width")),
        height=int(_number(params, "height")),
        scale=float(scale) if scale else 1.0,
    )
    if display.width < 1 or display.height < 1 or display.scale <= 0:
        raise ActionFailed("The viewport needs a positive width, height and scale")
    run.driver.tab_displays.pop(run.tab, None)
    _ensure_display(run.driver, run.tab, display)
    # Later actions convert coordinates with the new scale; the caller stores it.
    run.display = display
    run.new_display = display
    return {"width": display.width, "height": display.height, "scale_factor": display.scale}


def _do_screenshot(run: _Run, params: Params) -> dict[str, Any]:
    # The caller stores the image and fills screenshot_url.
    run.screenshot_png = run.driver.get_screenshot_as_png()
    return {}


def _do_html(run: _Run, params: Params) -> dict[str, Any]:
    # The browser has already decoded the page (by its declared or sniffed charset), so
    # auto_detect_encoding has nothing left to do. One WebDriver call: the serialised DOM.
    return {"html_content": run.driver.page_source}


def _do_wait(run: _Run, params: Params) -> dict[str, Any]:
    ms = params.get("ms") or 0
    if ms > 0:
        time.sleep(ms / 1000)
    return {}


def _page_context(run: _Run) -> dict[str, Any]:
    context = dict(run.driver.execute_script(page_scripts.PAGE_CONTEXT))
    context.update(tab_id=run.tab, is_main_tab=run.tab == run.main_tab)
    return context


def _script_again_on_navigation(exc: WebDriverException) -> bool:
    """A script that met a navigation (the document went away under it) is worth one more go."""
    text = _message(exc).lower()
    return isinstance(exc, StaleElementReferenceException) or (
        isinstance(exc, JavascriptException) and ("unloaded" in text or "destroyed" in text)
    )


def _observe_page(run: _Run, max_elements: Any) -> dict[str, Any]:
    limit = max_elements if isinstance(max_elements, int) and max_elements > 0 else OBSERVE_DEFAULT_ELEMENTS
    limit = min(limit, OBSERVE_MAX_ELEMENTS)
    try:
        return dict(run.driver.execute_script(page_scripts.OBSERVE, limit, run.display.scale))
    except WebDriverException as exc:
        if not _script_again_on_navigation(exc):
            raise
        time.sleep(0.1)
        return dict(run.driver.execute_script(page_scripts.OBSERVE, limit, run.display.scale))


def _do_observe(run: _Run, params: Params) -> dict[str, Any]:
    return _observe_page(run, params.get("max_elements"))


def _do_scrape(run: _Run, params: Params) -> dict[str, Any]:
    schema = params.get("schema")
    fmt = params.get("format") or ("none" if schema else "markdown")
    if fmt not in {"text", "markdown", "none"}:
        raise ActionFailed(f"Unknown scrape format {fmt!r}")
    if schema is not None and not isinstance(schema, dict):
        raise ActionFailed("The scrape schema must be an object")
    reply = run.driver.execute_script(
        page_scripts.SCRAPE,
        {
            "schema": schema or None,
            "format": fmt,
            "selector": params.get("selector") or None,
            "maxChars": SCRAPE_MAX_CHARS,
            "maxItems": SCRAPE_MAX_LIST_ITEMS,
        },
    )
    _page_error(reply)
    return dict(reply)


# Step -------------------------------------------------------------------------------------------

_STEP_ACTIONS = {"click", "fill", "select", "press", "hover", "scroll_into_view", "wait_for"}


def _describe_target(target: Params) -> str:
    for key in ("selector", "element_id", "text"):
        if target.get(key) is not None:
            return f"{key} {target[key]!r}"
    return "the target"


def _find_for_step(run: _Run, target: Params, action: str, value: str, timeout_ms: int) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_ms / 1000
    hidden = False
    while True:
        # Slices keep each async script well inside the browser's 20 s script timeout.
        budget = min(max(0, int((deadline - time.monotonic()) * 1000)), STEP_POLL_SLICE_MS)
        try:
            reply = run.driver.execute_async_script(page_scripts.STEP_FIND, target, action, value, budget)
        except WebDriverException as exc:
            # A navigation mid-wait (wait_for after a submit) ends the script: look in the new page.
            if not _script_again_on_navigation(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
            continue
        if isinstance(reply, dict) and reply.get("error") == "not_found":
            hidden = hidden or bool(reply.get("hidden"))
            if time.monotonic() < deadline:
                continue
            note = " (an element matches but is not visible)" if hidden else ""
            raise ActionFailed(f"No element matches {_describe_target(target)} within {timeout_ms} ms{note}")
        _page_error(reply)
        return dict(reply)


def _step_timeout_ms(params: Params) -> int:
    timeout = params.get("timeout_ms")
    if timeout is None:
        return STEP_DEFAULT_TIMEOUT_MS
    return min(max(int(timeout), 0), STEP_MAX_TIMEOUT_MS)


def _do_step(run: _Run, params: Params) -> dict[str, Any]:
    action = str(params.get("action") or "")
    if action not in _STEP_ACTIONS:
        raise ActionFailed(f"Unknown step action {action!r}")
    target = params.get("target") or {}
    if not isinstance(target, dict):
        raise ActionFailed("The step target must be an object")
    value = "" if params.get("value") is None else str(params.get("value"))
    done: dict[str, Any] = {"action": action, "target": target}
    found: dict[str, Any] = {}
    # press without a target goes to whatever has focus.
    if target or action != "press":
        found = _find_for_step(run, target, action, value, _step_timeout_ms(params))
        done["element"] = found.get("info")
    _finish_step(run, action, found, value)
    if action == "press":
        done["key"] = str(params.get("key") or value)
        _chord(run, _combo([done["key"]]))
    if found.get("selected"):
        done["selected"] = found["selected"]
    # The filled value is not echoed: results are stored, and it may be a password.
    return {"step": done, "page": _observe_page(run, params.get("max_elements"))}


def _finish_step(run: _Run, action: str, found: dict[str, Any], value: str) -> None:
    """The WebDriver half of a step, on the element the page script found and prepared."""
    element = found.get("element")
    if action == "click" or found.get("click"):
        # WebDriver's element click scrolls it into view and refuses when something covers it.
        element.click()
    elif action == "fill" and not found.get("done"):
        if _needs_text_input(value):
            run.driver.cdp("Input.insertText", {"text": value})  # the page script focused the field
        else:
            run.driver.execute(
                Command.SEND_KEYS_TO_ELEMENT, {"id": element.id, "text": value, "value": list(value)}
            )
    elif action == "hover":
        _perform_pointer(run, [_move((found["x"], found["y"]))])


# Tabs -------------------------------------------------------------------------------------------


def _tab_info(run: _Run) -> dict[str, Any]:
    return {"tab_id": run.tab, **run.driver.execute_script(page_scripts.URL_AND_TITLE)}


def _do_list_tabs(run: _Run, params: Params) -> dict[str, Any]:
    handles = run.driver.window_handles
    # Window handles are DevTools target ids: one call names every tab without visiting it.
    targets = {t.get("targetId"): t for t in run.driver.cdp("Target.getTargets").get("targetInfos", [])}
    tabs = []
    for handle in handles:
        target = targets.get(handle, {})
        tabs.append(
            {
                "id": handle,
                "url": target.get("url", ""),
                "title": target.get("title", ""),
                "is_main_tab": handle == run.main_tab,
            }
        )
    return {"tabs": tabs}


def _do_new_tab(run: _Run, params: Params) -> dict[str, Any]:
    if len(run.driver.window_handles) >= MAX_TABS:
        raise ActionFailed(f"A session has at most {MAX_TABS} tabs; close one first")
    previous = run.main_tab
    tab_id = str(run.driver.execute(Command.NEW_WINDOW, {"type": "tab"})["value"]["handle"])
    _make_main(run.driver, tab_id, run.display)
    run.main_tab = run.tab = tab_id
    url = params.get("url")
    if url:
        try:
            try:
                run.driver.get(str(url))
            except WebDriverException as exc:
                if isinstance(exc, InvalidSessionIdException):
                    raise
                raise ActionFailed(f"Could not load {url}: {_message(exc)}") from exc
            _raise_if_error_page(run, dict(run.driver.execute_script(page_scripts.URL_AND_TITLE)), str(url))
        except ActionFailed as exc:
            # All or nothing: a tab whose page failed is closed, and the main tab stays as it was.
            run.driver.close()
            run.driver.tab_displays.pop(tab_id, None)
            _make_main(run.driver, previous, run.display)
            run.main_tab = run.tab = previous
            raise ActionFailed(f"{exc} (the new tab was closed)") from exc
    return _tab_info(run)


def _tab_param(params: Params) -> str:
    tab_id = params.get("tab_id")
    if not tab_id:
        raise ActionFailed("tab_id is required")
    return str(tab_id)


def _do_switch_tab(run: _Run, params: Params) -> dict[str, Any]:
    tab_id = _tab_param(params)
    _make_main(run.driver, tab_id, run.display)
    run.main_tab = run.tab = tab_id
    return _tab_info(run)


def _do_close_tab(run: _Run, params: Params) -> dict[str, Any]:
    tab_id = _tab_param(params)
    handles = [str(h) for h in run.driver.window_handles]
    if tab_id not in handles:
        raise ActionFailed(f"No tab with id {tab_id!r}")
    if len(handles) == 1:
        raise ActionFailed("Cannot close the last tab")
    if tab_id == run.main_tab:
        run.driver.close()
        # The tab before it takes over, as a browser does.
        index = handles.index(tab_id)
        successor = handles[index - 1] if index > 0 else handles[1]
        _make_main(run.driver, successor, run.display)
        run.main_tab = run.tab = successor
    else:
        with _visiting(run.driver, tab_id, back_to=run.main_tab):
            run.driver.close()
    run.driver.tab_displays.pop(tab_id, None)
    return {"closed_tab_id": tab_id, "main_tab_id": run.main_tab}


_HANDLERS: dict[str, Handler] = {
    "navigate": _do_navigate,
    "click": _do_click,
    "double_click": _do_double_click,
    "right_click": _do_right_click,
    "move": _do_move,
    "drag": _do_drag,
    "mouse_down": _do_mouse_down,
    "mouse_up": _do_mouse_up,
    "type": _do_type,
    "point_and_type": _do_point_and_type,
    "hotkey": _do_hotkey,
    "key_down": _do_key_down,
    "key_up": _do_key_up,
    "scroll": _do_scroll,
    "viewport": _do_viewport,
    "screenshot": _do_screenshot,
    "html": _do_html,
    "wait": _do_wait,
    "observe": _do_observe,
    "step": _do_step,
    "scrape": _do_scrape,
}
# These move the main tab themselves, and read tab_id as their own parameter.
_TAB_HANDLERS: dict[str, Handler] = {
    "list_tabs": _do_list_tabs,
    "new_tab": _do_new_tab,
    "switch_tab": _do_switch_tab,
    "close_tab": _do_close_tab,
}
