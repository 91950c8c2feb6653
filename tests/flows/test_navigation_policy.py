"""A tenant cannot point its browser at an internal host by writing the URL the way browsers
(and not Python) read it. The "internal host" is a server on 127.0.0.2, which the test
configuration does not allow (only 127.0.0.1 is); its request log proves it received nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from sessions.models import Action


class _Forbidden(ThreadingHTTPServer):
    requests: list[str]


class _RecordingHandler(BaseHTTPRequestHandler):
    server: _Forbidden

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        body = b"<html><body>internal secret</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def forbidden_server() -> Iterator[_Forbidden]:
    server = _Forbidden(("127.0.0.2", 0), _RecordingHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _payloads(port: int) -> list[str]:
    return [
        f"http://127.0.0.2:{port}\\x@127.0.0.1/c1",  # backslash: Python reads host 127.0.0.1
        f"http://127.0.0.2:{port}\\@127.0.0.1:{port}/c2",
        f"http:\\\\127.0.0.2:{port}/c3",
        f"http://127.0.0.1:{port}@127.0.0.2:{port}/c4",  # userinfo
        f"http://127.0.0.1\t@127.0.0.2:{port}/c5",
        f"http://127.0.0.\t2:{port}/c6",  # tab and newline vanish inside the host
        f"http://127.0.\n0.2:{port}/c7",
        f"http://127%2E0%2E0%2E2:{port}/c8",  # percent-encoded dots
        f"http://2130706434:{port}/c9",  # decimal
        f"http://0x7f000002:{port}/c10",  # hex
        f"http://0177.0.0.2:{port}/c11",  # octal
        f"http://127.2:{port}/c12",  # short form
        f"http://[::ffff:127.0.0.2]:{port}/c13",  # IPv4-mapped IPv6
        f"http://[::ffff:7f00:2]:{port}/c14",
        f"http://[::127.0.0.2]:{port}/c15",  # IPv4-compatible IPv6
        f"http://127.0.0.2:{port}/c16",  # plainly
    ]


def test_navigation_to_an_internal_host_is_refused_in_every_spelling(client, pages_server, forbidden_server):
    port = forbidden_server.server_address[1]
    session_id = client.post("/v1/computers", {}).json()["id"]
    before = Action.objects.count()
    for url in _payloads(port):
        for path, body in (
            ("navigate", {"url": url}),
            ("tabs", {"url": url}),
            ("execute", {"action": {"type": "go_to_url", "url": url}}),
            ("batch", {"actions": [{"type": "wait", "ms": 1}, {"type": "new_tab", "url": url}]}),
        ):
            response = client.post(f"/v1/computers/{session_id}/{path}", body)
            assert response.status_code == 400, (path, url, response.text)
            assert response.json()["code"] in ("invalid_url", "blocked_address"), (path, url, response.text)
    assert Action.objects.count() == before
    # The browser is alive and allowed pages still open.
    ok = client.post(f"/v1/computers/{session_id}/navigate", {"url": pages_server + "/flow.html"})
    assert ok.json()["status"] == "success", ok.text
    assert forbidden_server.requests == []


def test_the_browser_is_given_the_url_that_was_checked(client, pages_server, forbidden_server):
    session_id = client.post("/v1/computers", {}).json()["id"]
    port = pages_server.rsplit(":", 1)[1]
    response = client.post(
        f"/v1/computers/{session_id}/navigate", {"url": f"HTTP://0x7f.1:{port}/a/../flow.html"}
    )
    assert response.json()["status"] == "success", response.text
    action = Action.objects.filter(type="navigate").order_by("-id").first()
    assert action.params["url"] == f"http://127.0.0.1:{port}/flow.html"
    # Control: the server on 127.0.0.2 is up and logs what reaches it, so the empty request log
    # above means the refusals held. (The browser itself cannot be the control any more: its
    # egress filter refuses 127.0.0.2 whatever the navigation check allowed, tests/flows/test_egress.py.)
    assert requests.get(f"http://127.0.0.2:{forbidden_server.server_address[1]}/allowed", timeout=10).ok
    assert forbidden_server.requests[0] == "/allowed"
