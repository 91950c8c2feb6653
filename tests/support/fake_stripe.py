"""A loopback stand-in for Stripe's API (STRIPE_API_BASE): records checkout session creates and
answers each with a session; tests never reach Stripe."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest


@pytest.fixture(name="fake_stripe")
def fake_stripe_fixture(settings: Any) -> Iterator[list[dict[str, Any]]]:
    """A loopback stand-in for Stripe's API: records checkout session creates, answers one."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            seen.append(
                {"path": self.path, "form": parse_qs(body), "auth": self.headers.get("Authorization")}
            )
            answer = json.dumps(
                {
                    "id": "cs_test_42",
                    "object": "checkout.session",
                    "url": "https://checkout.stripe.com/c/pay/cs_test_42",
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{server.server_port}"
    try:
        yield seen
    finally:
        server.shutdown()
