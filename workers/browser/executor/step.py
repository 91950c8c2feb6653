"""The step action: find an element by selector, id or text, act on it, observe the page."""

from __future__ import annotations

import time
from typing import Any

from selenium.common.exceptions import (
    WebDriverException,
)
from selenium.webdriver.remote.command import Command

from workers.browser import page_scripts
from workers.browser.executor.failures import page_error
from workers.browser.executor.keyboard import chord, combo, needs_text_input
from workers.browser.executor.page import observe_page, script_again_on_navigation
from workers.browser.executor.pointer import move_to, perform_pointer
from workers.browser.executor.run import (
    ActionFailed,
    Handler,
    Params,
    Run,
)

# Element lookups poll inside the page, in async scripts of at most this long: scripts time out
# after 20 s (options.py).
STEP_POLL_SLICE_MS = 5_000


def _describe_target(target: Params) -> str:
    for key in ("selector", "element_id", "text"):
        if target.get(key) is not None:
            return f"{key} {target[key]!r}"
    return "the target"


def _find_for_step(run: Run, target: Params, action: str, value: str, timeout_ms: int) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_ms / 1000
    hidden = False
    while True:
        # Slices keep each async script well inside the browser's 20 s script timeout.
        budget = min(max(0, int((deadline - time.monotonic()) * 1000)), STEP_POLL_SLICE_MS)
        try:
            reply = run.driver.execute_async_script(page_scripts.STEP_FIND, target, action, value, budget)
        except WebDriverException as exc:
            # A navigation mid-wait (wait_for after a submit) ends the script: look in the new page.
            if not script_again_on_navigation(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
            continue
        if isinstance(reply, dict) and reply.get("error") == "not_found":
            hidden = hidden or bool(reply.get("hidden"))
            if time.monotonic() < deadline:
                continue
            note = " (an element matches but is not visible)" if hidden else ""
            raise ActionFailed(f"No element matches {_describe_target(target)} within {timeout_ms} ms{note}")
        page_error(reply)
        return dict(reply)


def _do_step(run: Run, params: Params) -> dict[str, Any]:
    action, target = params["action"], params["target"]
    value = "" if params.get("value") is None else str(params.get("value"))
    done: dict[str, Any] = {"action": action, "target": target}
    found: dict[str, Any] = {}
    # press without a target goes to whatever has focus.
    if target or action != "press":
        found = _find_for_step(run, target, action, value, params["timeout_ms"])
        done["element"] = found.get("info")
    _finish_step(run, action, found, value)
    if action == "press":
        done["key"] = str(params.get("key") or value)
        chord(run, combo([done["key"]]))
    if found.get("selected"):
        done["selected"] = found["selected"]
    # The filled value is not echoed: results are stored, and it may be a password.
    return {"step": done, "page": observe_page(run, params.get("max_elements"))}


def _finish_step(run: Run, action: str, found: dict[str, Any], value: str) -> None:
    """The WebDriver half of a step, on the element the page script found and prepared."""
    element: Any = found.get("element")  # a WebElement when the action needs one
    if action == "click" or found.get("click"):
        # WebDriver's element click scrolls it into view and refuses when something covers it.
        element.click()
    elif action == "fill" and not found.get("done"):
        if needs_text_input(value):
            run.driver.cdp("Input.insertText", {"text": value})  # the page script focused the field
        else:
            run.driver.execute(
                Command.SEND_KEYS_TO_ELEMENT, {"id": element.id, "text": value, "value": list(value)}
            )
    elif action == "hover":
        perform_pointer(run, [move_to((found["x"], found["y"]))])


HANDLERS: dict[str, Handler] = {
    "step": _do_step,
}
