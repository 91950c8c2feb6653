"""Pointer actions: clicks, moves, drags, buttons held, the wheel."""

from __future__ import annotations

from typing import Any

from selenium.webdriver.remote.command import Command

from sessions.action_specs import BUTTONS
from workers.browser.executor.params import css_point, number
from workers.browser.executor.run import (
    ActionFailed,
    Handler,
    Params,
    Run,
)

# W3C button numbers. "wheel" is what OpenAI's computer-use actions call the middle button.
_W3C_BUTTON_OF = {"left": 0, "middle": 1, "right": 2, "back": 3, "forward": 4}
# One number for each canonical name (sessions/action_specs.py): a name without one fails here.
_BUTTONS = {name: _W3C_BUTTON_OF[name] for name in set(BUTTONS.values())}


def _button(params: Params, default: str = "left") -> int:
    return _BUTTONS[str(params.get("button") or default)]


def move_to(point: tuple[float, float]) -> dict[str, Any]:
    return {"type": "pointerMove", "x": point[0], "y": point[1], "origin": "viewport", "duration": 0}


def perform_pointer(run: Run, steps: list[dict[str, Any]]) -> None:
    # One id and type for every call: chromedriver keeps this source's state (the position and
    # held buttons) in the session between calls, which is what makes mouse_down/mouse_up work.
    source = {"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"}, "actions": steps}
    run.driver.execute(Command.W3C_ACTIONS, {"actions": [source]})


def click(run: Run, params: Params, *, button: int | None = None, count: int = 1) -> dict[str, Any]:
    pressed = _button(params) if button is None else button
    steps = [move_to(css_point(run, params))]
    for _ in range(count):
        steps += [{"type": "pointerDown", "button": pressed}, {"type": "pointerUp", "button": pressed}]
    perform_pointer(run, steps)
    return {}


def _do_click(run: Run, params: Params) -> dict[str, Any]:
    return click(run, params)


def _do_double_click(run: Run, params: Params) -> dict[str, Any]:
    return click(run, params, button=0, count=2)


def _do_right_click(run: Run, params: Params) -> dict[str, Any]:
    return click(run, params, button=2)


def _do_move(run: Run, params: Params) -> dict[str, Any]:
    perform_pointer(run, [move_to(css_point(run, params))])
    return {}


def _do_drag(run: Run, params: Params) -> dict[str, Any]:
    path = params.get("path")
    if not isinstance(path, list) or len(path) < 2 or not all(isinstance(p, dict) for p in path):
        raise ActionFailed("drag needs a path of at least two {x, y} points")
    points = [css_point(run, p) for p in path]
    steps = [move_to(points[0]), {"type": "pointerDown", "button": 0}]
    steps += [move_to(point) for point in points[1:]]
    steps.append({"type": "pointerUp", "button": 0})
    perform_pointer(run, steps)
    return {}


def _pointer_hold(run: Run, params: Params, kind: str) -> dict[str, Any]:
    steps = []
    # The point is optional: without one the button goes down or up where the mouse is.
    if params.get("x") is not None and params.get("y") is not None:
        steps.append(move_to(css_point(run, params)))
    steps.append({"type": kind, "button": _button(params)})
    perform_pointer(run, steps)
    return {}


def _do_mouse_down(run: Run, params: Params) -> dict[str, Any]:
    return _pointer_hold(run, params, "pointerDown")


def _do_mouse_up(run: Run, params: Params) -> dict[str, Any]:
    return _pointer_hold(run, params, "pointerUp")


def _do_scroll(run: Run, params: Params) -> dict[str, Any]:
    x, y = css_point(run, params)
    scale = run.display.scale
    dx = number(params, "dx") if params.get("dx") is not None else 0.0
    dy = number(params, "dy") if params.get("dy") is not None else 0.0
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


HANDLERS: dict[str, Handler] = {
    "click": _do_click,
    "double_click": _do_double_click,
    "right_click": _do_right_click,
    "move": _do_move,
    "drag": _do_drag,
    "mouse_down": _do_mouse_down,
    "mouse_up": _do_mouse_up,
    "scroll": _do_scroll,
}
