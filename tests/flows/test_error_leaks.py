"""Browser errors reach tenants without the driver's address or the WebDriver session id."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sessions.models import BrowserSession


class _GridLikeDriver(BaseHTTPRequestHandler):
    """Answers every WebDriver command as a Grid node does when it lost track of a session: an
    error that names the node and the session."""

    def _fail(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        port = self.server.server_address[1]
        sid = self.path.split("/")[2] if self.path.startswith("/session/") else "?"
        message = (
            f"unknown error: Unable to execute request for an existing session {sid} on node "
            f"http://127.0.0.1:{port} (HTTPConnectionPool(host='127.0.0.1', port={port}))"
        )
        body = json.dumps({"value": {"error": "unknown error", "message": message}}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _fail

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def grid_like_driver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GridLikeDriver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_driver_address_and_session_id_are_not_shown_to_the_tenant(client, grid_like_driver):
    session_id = client.post("/v1/computers", {}).json()["id"]
    row = BrowserSession.objects.get(pk=session_id)
    real = (row.webdriver_url, row.webdriver_session_id)
    fake_sid = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    BrowserSession.objects.filter(pk=session_id).update(
        webdriver_url=grid_like_driver, webdriver_session_id=fake_sid
    )
    try:
        for path, body in (("html", {}), ("batch", {"actions": [{"type": "get_html_content"}]})):
            response = client.post(f"/v1/computers/{session_id}/{path}", body)
            assert response.status_code == 200, response.text
            reply = response.json()
            assert reply["status"] == "error"
            shown = json.dumps(reply)
            port = grid_like_driver.rsplit(":", 1)[1]
            assert port not in shown and fake_sid not in shown, shown
            assert "Unable to execute request" in reply["error_message"]  # the useful part stays
    finally:
        # The real browser is stopped through its real driver when the test ends.
        BrowserSession.objects.filter(pk=session_id).update(
            webdriver_url=real[0], webdriver_session_id=real[1]
        )
