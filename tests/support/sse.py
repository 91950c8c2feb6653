"""A small server-sent events reader for tests: a stream opened with requests, read in a thread."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass
class Event:
    event: str
    data: Any
    id: str | None = None


@dataclass
class SseReader:
    """Reads `response` (opened with stream=True) into `events` until the server ends it."""

    response: requests.Response
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended_at: float | None = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        block: dict[str, str] = {}
        try:
            for raw in self.response.iter_lines(decode_unicode=True):
                line = raw or ""
                if not line:
                    if "data" in block:
                        data = block["data"]
                        try:
                            parsed: Any = json.loads(data)
                        except ValueError:
                            parsed = data
                        self.events.append(Event(block.get("event", "message"), parsed, block.get("id")))
                    block = {}
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    block[name] = block[name] + "\n" + value if name in block else value
        except BaseException as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()

    def wait_for(self, predicate: Any, *, timeout: float, message: str = "event") -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            if self.ended_at is not None and not predicate(self.events):
                raise AssertionError(f"stream ended before {message}: {self.events} {self.error}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {message}: {self.events}")
            time.sleep(0.02)

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self) -> None:
        self.response.close()
