"""Reading numbers and points from an action's parameters."""

from __future__ import annotations

from workers.browser.executor.run import ActionFailed, Params, Run


def number(params: Params, name: str) -> float:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ActionFailed(f"{name} must be a number")
    return float(value)


def css_point(run: Run, params: Params) -> tuple[float, float]:
    """A point in screenshot pixels as CSS pixels, refused when it is off the screen."""
    px, py = number(params, "x"), number(params, "y")
    scale = run.display.scale
    width, height = run.display.width * scale, run.display.height * scale
    if not (0 <= px < width and 0 <= py < height):
        raise ActionFailed(
            f"Point ({px:g}, {py:g}) is outside the screen ({width:g}x{height:g} screenshot pixels)"
        )
    return px / scale, py / scale
