"""Keyboard actions: keys by name, chords, typing text."""

from __future__ import annotations

from typing import Any

from selenium.webdriver.remote.command import Command

from workers.browser.executor.pointer import click
from workers.browser.executor.run import (
    ActionFailed,
    Handler,
    Params,
    Run,
)

# Each typed character is a key down and up, about 3 ms in chromedriver. Longer text is inserted
# as one text input (like a paste) so that a long `type` stays inside the request timeout.
TYPE_MAX_KEYSTROKES = 500

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


def combo(keys: list[Any]) -> list[Key]:
    """Keys of a chord; "ctrl+c" as one entry is split, "+" alone is the plus key."""
    names: list[str] = []
    for entry in keys:
        text = str(entry)
        parts = text.split("+")
        names += parts if len(text) > 1 and all(parts) else [text]
    if not names:
        raise ActionFailed("No keys given")
    return [_key(name) for name in names]


def _press_keys(run: Run, events: list[tuple[str, Key]]) -> None:
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


def chord(run: Run, keys: list[Key]) -> None:
    events = [("keyDown", k) for k in keys] + [("keyUp", k) for k in reversed(keys)]
    _press_keys(run, events)


def _do_hotkey(run: Run, params: Params) -> dict[str, Any]:
    keys = params.get("keys")
    if not isinstance(keys, list):
        raise ActionFailed("hotkey needs a list of keys")
    chord(run, combo(keys))
    return {}


def _do_key_down(run: Run, params: Params) -> dict[str, Any]:
    _press_keys(run, [("keyDown", _key(str(params.get("key", ""))))])
    return {}


def _do_key_up(run: Run, params: Params) -> dict[str, Any]:
    _press_keys(run, [("keyUp", _key(str(params.get("key", ""))))])
    return {}


def _typed_keys(text: str) -> list[str]:
    # A newline is the Enter key, as a person typing it would press it.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [_W3C_KEYS["enter"] if ch == "\n" else _W3C_KEYS["tab"] if ch == "\t" else ch for ch in text]


def needs_text_input(text: str) -> bool:
    """Long text, or text holding characters that WebDriver would read as special keys."""
    return len(text) > TYPE_MAX_KEYSTROKES or any("\ue000" <= ch <= "\ue05d" for ch in text)


def _type_text(run: Run, text: str) -> None:
    if not text:
        return
    if needs_text_input(text):
        run.driver.cdp("Input.insertText", {"text": text})
        return
    steps: list[dict[str, Any]] = []
    for key in _typed_keys(text):
        steps += [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]
    run.driver.execute(
        Command.W3C_ACTIONS, {"actions": [{"type": "key", "id": "keyboard", "actions": steps}]}
    )


def _do_type(run: Run, params: Params) -> dict[str, Any]:
    _type_text(run, str(params.get("text") or ""))
    return {}


def _do_point_and_type(run: Run, params: Params) -> dict[str, Any]:
    click(run, params, button=0)
    _type_text(run, str(params.get("text") or ""))
    return {}


HANDLERS: dict[str, Handler] = {
    "type": _do_type,
    "point_and_type": _do_point_and_type,
    "hotkey": _do_hotkey,
    "key_down": _do_key_down,
    "key_up": _do_key_up,
}
