"""What a browser action may say: validation and normalization into one canonical shape.

Clients reach the same commands by several routes (a Tzafon endpoint such as `/click`, the
generic `/execute` with a contract `type`, OpenAI computer-use shapes fed to `/batch` by the
SDK's examples, NotexAI's observe/step/scrape). Everything is validated here, in the web
process, and turned into `{"type": <canonical type>, ...params}` before anything is queued, so
invalid input is a 400 that runs nothing, and workers see one shape only.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from rest_framework import serializers

from project.exceptions import InvalidInput, NotImplementedByServer
from project.fields import StrictBooleanField, StrictCharField, StrictFloatField, StrictIntegerField
from sessions.input_limits import (
    MAX_DRAG_POINTS,
    check_batch_waits,
    check_pixel_budget,
    check_schema_size,
)
from sessions.proxies import CHANGE_PROXY_SEAL_ID, proxies_available, proxy_server_check
from sessions.state_crypto import state_seal
from sessions.url_policy import navigation_url

# The vocabulary and its limits have one owner, this module: the executor
# (workers/browser/executor/) imports them and trusts the shape validated here.
MAX_COORDINATE = 100_000
MAX_WAIT_MS = 30_000
MAX_SETTLE_MS = 10_000
MAX_BATCH_ACTIONS = 100
MAX_TEXT = 100_000
# Tabs per session, as the contract's docs promise.
MAX_TABS = 5
OBSERVE_DEFAULT_ELEMENTS = 200
OBSERVE_MAX_ELEMENTS = 1000
STEP_ACTIONS = ("click", "fill", "select", "press", "hover", "scroll_into_view", "wait_for")
STEP_DEFAULT_TIMEOUT_MS = 5_000
STEP_MAX_TIMEOUT_MS = 20_000
SCRAPE_FORMATS = ("text", "markdown", "none")


def _coordinate(**kwargs: Any) -> StrictFloatField:
    return StrictFloatField(min_value=-MAX_COORDINATE, max_value=MAX_COORDINATE, **kwargs)


class CommonFlags(serializers.Serializer[Any]):
    tab_id = StrictCharField(required=False, max_length=100)
    include_context = StrictBooleanField(required=False)
    screenshot_after = StrictBooleanField(required=False)
    settle_ms = StrictIntegerField(required=False, min_value=0, max_value=MAX_SETTLE_MS)
    request_id = StrictCharField(required=False, max_length=200)


class Point(CommonFlags):
    x = _coordinate()
    y = _coordinate()


# Accepted button names -> the canonical ones the executor receives.
BUTTONS = {
    "left": "left",
    "right": "right",
    "middle": "middle",
    "wheel": "middle",
    "back": "back",
    "forward": "forward",
}


class ClickParams(Point):
    button = serializers.ChoiceField(choices=sorted(BUTTONS), required=False, default="left")

    def validate_button(self, value: str) -> str:
        return BUTTONS[value]


class PathPoint(serializers.Serializer[Any]):
    x = _coordinate()
    y = _coordinate()


class DragParams(CommonFlags):
    # ListSerializer takes max_length; the stubs type PathPoint(many=True) as PathPoint.
    path = PathPoint(many=True, required=False, max_length=MAX_DRAG_POINTS)  # type: ignore[call-arg]
    x1 = _coordinate(required=False)
    y1 = _coordinate(required=False)
    x2 = _coordinate(required=False)
    y2 = _coordinate(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        ends = [attrs.pop(k, None) for k in ("x1", "y1", "x2", "y2")]
        if "path" not in attrs:
            if any(v is None for v in ends):
                raise serializers.ValidationError("drag needs x1, y1, x2, y2 or a path of points.")
            attrs["path"] = [{"x": ends[0], "y": ends[1]}, {"x": ends[2], "y": ends[3]}]
        if len(attrs["path"]) < 2:
            raise serializers.ValidationError({"path": "A drag needs at least two points."})
        return attrs


class MouseButtonParams(Point):
    button = serializers.ChoiceField(choices=sorted(BUTTONS), required=False, default="left")

    def validate_button(self, value: str) -> str:
        return BUTTONS[value]


class TypeParams(CommonFlags):
    text = StrictCharField(max_length=MAX_TEXT, trim_whitespace=False, allow_blank=True)


class PointAndTypeParams(Point):
    text = StrictCharField(max_length=MAX_TEXT, trim_whitespace=False, allow_blank=True)


class HotkeyParams(CommonFlags):
    keys = serializers.ListField(child=StrictCharField(max_length=32), min_length=1, max_length=8)


class KeyParams(CommonFlags):
    key = StrictCharField(max_length=32, required=False)
    keys = serializers.ListField(child=StrictCharField(max_length=32), required=False, max_length=8)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        keys = attrs.pop("keys", None)
        if "key" not in attrs:
            # OpenAI computer-use sends key_down/key_up with a one-element `keys` list.
            if not keys or len(keys) != 1:
                raise serializers.ValidationError({"key": "Give one key (or `keys` with exactly one)."})
            attrs["key"] = keys[0]
        return attrs


class ScrollParams(CommonFlags):
    x = _coordinate(required=False, default=0)
    y = _coordinate(required=False, default=0)
    dx = _coordinate(required=False)
    dy = _coordinate(required=False)
    scroll_x = _coordinate(required=False)  # OpenAI computer-use spelling
    scroll_y = _coordinate(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        sx, sy = attrs.pop("scroll_x", None), attrs.pop("scroll_y", None)
        attrs.setdefault("dx", sx if sx is not None else 0)
        attrs.setdefault("dy", sy if sy is not None else 0)
        return attrs


class ViewportParams(CommonFlags):
    width = StrictIntegerField(min_value=200, max_value=3840)
    height = StrictIntegerField(min_value=200, max_value=2160)
    scale_factor = StrictFloatField(min_value=0.5, max_value=4.0, required=False, default=1.0)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        check_pixel_budget(width=attrs["width"], height=attrs["height"], scale=attrs["scale_factor"])
        return attrs


class ScreenshotParams(CommonFlags):
    base64 = StrictBooleanField(required=False, default=False)


class HtmlParams(CommonFlags):
    auto_detect_encoding = StrictBooleanField(required=False, default=False)


class WaitParams(CommonFlags):
    ms = StrictIntegerField(min_value=0, max_value=MAX_WAIT_MS, required=False, default=1000)


class UrlParams(CommonFlags):
    url = StrictCharField(max_length=4096)

    def validate_url(self, value: str) -> str:
        return check_navigation_target(value)


class OptionalUrlParams(CommonFlags):
    url = StrictCharField(max_length=4096, required=False)

    def validate_url(self, value: str) -> str:
        return check_navigation_target(value)


class TabParams(CommonFlags):
    tab_id = StrictCharField(max_length=100)


class ObserveParams(CommonFlags):
    max_elements = StrictIntegerField(
        min_value=1, max_value=OBSERVE_MAX_ELEMENTS, required=False, default=OBSERVE_DEFAULT_ELEMENTS
    )


class StepTarget(serializers.Serializer[Any]):
    selector = StrictCharField(max_length=1000, required=False)
    element_id = StrictCharField(max_length=32, required=False)
    text = StrictCharField(max_length=500, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if len(attrs) != 1:
            raise serializers.ValidationError("target needs exactly one of selector, element_id, text.")
        return attrs


class StepParams(CommonFlags):
    action = serializers.ChoiceField(choices=STEP_ACTIONS)
    target = StepTarget(required=False)
    selector = StrictCharField(max_length=1000, required=False)  # shorthand for target.selector
    value = StrictCharField(max_length=MAX_TEXT, required=False, allow_blank=True, trim_whitespace=False)
    key = StrictCharField(max_length=32, required=False)
    timeout_ms = StrictIntegerField(
        min_value=0, max_value=STEP_MAX_TIMEOUT_MS, required=False, default=STEP_DEFAULT_TIMEOUT_MS
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        selector = attrs.pop("selector", None)
        if "target" not in attrs:
            if selector is None:
                raise serializers.ValidationError(
                    {"target": "step needs a target (selector, element_id or text)."}
                )
            attrs["target"] = {"selector": selector}
        if attrs["action"] in ("fill", "select") and "value" not in attrs:
            raise serializers.ValidationError({"value": f"step {attrs['action']} needs a value."})
        if attrs["action"] == "press" and "key" not in attrs:
            raise serializers.ValidationError({"key": "step press needs a key."})
        return attrs


class ScrapeParams(CommonFlags):
    schema = serializers.DictField(required=False)
    selector = StrictCharField(max_length=1000, required=False)
    format = serializers.ChoiceField(choices=SCRAPE_FORMATS, required=False)

    def validate_schema(self, value: dict[str, Any]) -> dict[str, Any]:
        _check_schema(value, depth=0)
        check_schema_size(value)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs.setdefault("format", "none" if "schema" in attrs else "markdown")
        return attrs


def _check_schema(schema: Any, *, depth: int) -> None:
    if depth > 5:
        raise serializers.ValidationError("schema is nested too deeply (5 levels at most).")
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), dict) or not schema["fields"]:
        raise serializers.ValidationError("schema needs a non-empty `fields` object.")
    for key in ("selector", "attr"):
        if key in schema and not isinstance(schema[key], str):
            raise serializers.ValidationError(f"schema `{key}` must be a string.")
    for name, spec in schema["fields"].items():
        if isinstance(spec, str):
            continue
        if not isinstance(spec, dict):
            raise serializers.ValidationError(f"field {name!r} must be a selector string or an object.")
        if "selector" in spec and not isinstance(spec["selector"], str):
            raise serializers.ValidationError(f"field {name!r}: selector must be a string.")
        if "list" in spec and not isinstance(spec["list"], bool):
            raise serializers.ValidationError(f"field {name!r}: list must be true or false.")
        if "fields" in spec:
            _check_schema(spec, depth=depth + 1)
        elif "selector" not in spec:
            raise serializers.ValidationError(f"field {name!r} needs a selector.")


class NoParams(CommonFlags):
    pass


class ChangeProxyParams(CommonFlags):
    """The session's upstream proxy from now on: `http://[user:pass@]host:port`, or "direct".

    Stored as the action's params: `proxy_url` without its credentials, which travel sealed to the
    worker (`sealed`, never shown: action_views drops it) and end in the session's sealed config.
    """

    proxy_url = StrictCharField(max_length=2048, trim_whitespace=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        proxies_available()
        rule = proxy_server_check(attrs["proxy_url"])
        attrs["proxy_url"] = rule["server"]
        if rule["username"] or rule["password"]:
            credentials = json.dumps({"username": rule["username"], "password": rule["password"]})
            sealed = state_seal(state_id=CHANGE_PROXY_SEAL_ID, plaintext=credentials.encode())
            attrs["sealed"] = base64.b64encode(sealed).decode()
        return attrs


# canonical type -> parameter serializer
CANONICAL: dict[str, type[serializers.Serializer[Any]]] = {
    "navigate": UrlParams,
    "click": ClickParams,
    "double_click": Point,
    "right_click": Point,
    "move": Point,
    "drag": DragParams,
    "mouse_down": MouseButtonParams,
    "mouse_up": MouseButtonParams,
    "type": TypeParams,
    "point_and_type": PointAndTypeParams,
    "hotkey": HotkeyParams,
    "key_down": KeyParams,
    "key_up": KeyParams,
    "scroll": ScrollParams,
    "viewport": ViewportParams,
    "screenshot": ScreenshotParams,
    "html": HtmlParams,
    "wait": WaitParams,
    "list_tabs": NoParams,
    "new_tab": OptionalUrlParams,
    "switch_tab": TabParams,
    "close_tab": TabParams,
    "observe": ObserveParams,
    "step": StepParams,
    "scrape": ScrapeParams,
    "change_proxy": ChangeProxyParams,
}

# Contract and OpenAI computer-use names for the generic `type` field -> canonical type.
ALIASES = {
    "keypress": "hotkey",
    "go_to_url": "navigate",
    "goto": "navigate",
    "get_html_content": "html",
    "set_viewport": "viewport",
    "doubleclick": "double_click",
}

# Tzafon endpoint path -> canonical action type
ENDPOINT_TYPES: dict[str, str] = {
    "navigate": "navigate",
    "click": "click",
    "double-click": "double_click",
    "right-click": "right_click",
    "drag": "drag",
    "mouse-down": "mouse_down",
    "mouse-up": "mouse_up",
    "move": "move",
    "type": "type",
    "hotkey": "hotkey",
    "key-down": "key_down",
    "key-up": "key_up",
    "scroll": "scroll",
    "viewport": "viewport",
    "screenshot": "screenshot",
    "html": "html",
    "wait": "wait",
    "observe": "observe",
    "step": "step",
    "scrape": "scrape",
    "debug": "debug",
    "change-proxy": "change_proxy",
}

NOT_SUPPORTED = {
    "debug": "Shell commands need a desktop session; this server runs browser sessions only.",
}


def normalize_action(type_name: str, params: Any) -> dict[str, Any]:
    """Validate `params` for the action `type_name`; return the canonical action dict."""
    if not isinstance(params, dict):
        raise InvalidInput("The action must be a JSON object.")
    canonical = ALIASES.get(type_name, type_name)
    if canonical in NOT_SUPPORTED:
        raise NotImplementedByServer(NOT_SUPPORTED[canonical], code="action_not_supported")
    if canonical == "click" and params.get("button") == "right":
        canonical = "right_click"  # same command; right_click has no button field
        params = {k: v for k, v in params.items() if k != "button"}
    serializer_class = CANONICAL.get(canonical)
    if serializer_class is None:
        known = sorted(set(CANONICAL) | set(ALIASES))
        raise InvalidInput(
            f"Unknown action type {type_name!r}. Known types: {', '.join(known)}.", code="unknown_action"
        )
    serializer = serializer_class(data={k: v for k, v in params.items() if k != "type"})
    serializer.is_valid(raise_exception=True)
    return {"type": canonical, **serializer.validated_data}


def normalize_generic(action: Any) -> dict[str, Any]:
    """An action object of `/execute` or `/batch`: its `type` picks the command."""
    if not isinstance(action, dict):
        raise InvalidInput("Each action must be a JSON object with a `type`.")
    type_name = action.get("type")
    if not isinstance(type_name, str) or not type_name:
        raise InvalidInput("The action needs a `type`.", code="unknown_action")
    return normalize_action(type_name, action)


def normalize_batch(actions: Any) -> list[dict[str, Any]]:
    if not isinstance(actions, list) or not actions:
        raise InvalidInput("`actions` must be a non-empty list.")
    if len(actions) > MAX_BATCH_ACTIONS:
        raise InvalidInput(f"A batch holds at most {MAX_BATCH_ACTIONS} actions.")
    normalized = []
    for index, action in enumerate(actions):
        try:
            normalized.append(normalize_generic(action))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({f"actions[{index}]": exc.detail}) from exc
        except InvalidInput as exc:
            raise InvalidInput(f"actions[{index}]: {exc.detail}", code=exc.code) from exc
    check_batch_waits(normalized)
    return normalized


def check_navigation_target(url: str) -> str:
    """The URL as the browser will read it, once its host is allowed (sessions/url_policy.py)."""
    return navigation_url(url)
