"""Webhook receivers the tests run on loopback, and a recorder on 127.0.0.2 that stands for an
internal host a delivery must never reach (the test configuration allows only 127.0.0.1).

A receiver's behaviour is in its path: POST /<name> answers 200; /fail-<n>-<name> answers 500 to
the first n posts; /status-<code>-<name> always answers <code>; /redirect-<name>?to=URL answers
303 to URL; /slow-<ms>-<name> waits ms before its 200; /trickle-<ms>-<name> sends its headers one line a
second for ms; /stall-<ms>-<name> does that the first time only; /retry-after-<name> answers 429 with
Retry-After: 1 the first time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Receiver:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posts(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["name"] == name]

    def all(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            name = parts.path.strip("/").split("/")[-1]
            with receiver.lock:
                receiver.requests.append(
                    {
                        "name": name,
                        "method": self.command,
                        "path": parts.path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                tries = sum(1 for r in receiver.requests if r["name"] == name)
            kind = name.split("-")
            if kind[0] == "fail" and tries <= int(kind[1]):
                self._send(500)
            elif kind[0] == "status":
                self._send(int(kind[1]))
            elif kind[0] == "redirect":
                self._send(303, {"Location": parse_qs(parts.query)["to"][0]})
            elif kind[0] == "trickle" or (kind[0] == "stall" and tries == 1):
                # Headers one line a second: every read is quick, the whole answer is not.
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(int(kind[1]) // 1000):
                    self.wfile.write(b"X-Wait: 1\r\n")
                    self.wfile.flush()
                    time.sleep(1)
                self.wfile.write(b"Content-Length: 0\r\n\r\n")
                self.close_connection = True
            elif kind[0] == "slow":
                time.sleep(int(kind[1]) / 1000)
                self._send(200)
            elif kind[0] == "retry" and tries == 1:
                self._send(429, {"Retry-After": "1"})
            else:
                self._send(200)

        do_POST = _handle
        do_GET = _handle

    return Handler


@contextmanager
def running_receiver(host: str = "127.0.0.1") -> Iterator[Receiver]:
    server = ThreadingHTTPServer((host, 0), _handler(Receiver(url="")))
    server.daemon_threads = True
    receiver = Receiver(url=f"http://{host}:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
