"""GET /computers/{id}/screencast: DevTools' screencast of the session's page, cast on the
browser's host while someone watches, through Redis to the ASGI web process."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
import requests

from sessions.models import BrowserSession
from tests.support.processes import wait_until
from tests.support.sse import SseReader
from workers.screencast import devtools_port, jpeg_size


def _open(client: Any, session_id: str, *, prefix: str = "/v1") -> requests.Response:
    return requests.get(
        f"{client.base_url}{prefix}/computers/{session_id}/screencast",
        headers={"Authorization": f"Bearer {client.key}"},
        stream=True,
        timeout=(10, 60),
    )


def _frames(events: list[Any]) -> list[Any]:
    return [e for e in events if e.event == "message" and isinstance(e.data, dict) and "image_data" in e.data]


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_screencast_sends_jpeg_frames_that_change_after_a_click_and_ends_with_the_session(
    make_client: Any, pages_server: str, prefix: str
) -> None:
    client = make_client(plan="pro")
    session_id = client.post("/v1/computers", {}).json()["id"]
    page = client.post(f"/v1/computers/{session_id}/navigate", {"url": f"{pages_server}/screencast.html"})
    assert page.json()["status"] == "success", page.text
    response = _open(client, session_id, prefix=prefix)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    stream = SseReader(response)
    try:
        stream.wait_for(lambda ev: len(_frames(ev)) >= 1, timeout=30, message="a first frame")
        assert "heartbeat" in stream.comments
        first = _frames(stream.events)[0].data
        image = base64.b64decode(first["image_data"])
        assert image[:2] == b"\xff\xd8" and image[-2:] == b"\xff\xd9"  # JPEG SOI ... EOI
        metadata = first["metadata"]
        assert jpeg_size(image) == (metadata["width"], metadata["height"])
        assert metadata["width"] > 0 and metadata["height"] > 0 and metadata["timestamp"] > 0
        assert metadata["device_width"] > 0

        seen = len(_frames(stream.events))
        before = _frames(stream.events)[-1].data["image_data"]
        clicked = client.post(f"/v1/computers/{session_id}/click", {"x": 150, "y": 150})
        assert clicked.json()["status"] == "success", clicked.text
        stream.wait_for(
            lambda ev: any(f.data["image_data"] != before for f in _frames(ev)[seen:]),
            timeout=20,
            message="a frame showing the click",
        )

        assert client.delete(f"/v1/computers/{session_id}").status_code == 200
        deleted_at = time.monotonic()
        assert stream.join(timeout=10), "the screencast did not end with the session"
        assert stream.ended_at is not None and stream.ended_at - deleted_at < 2.0
    finally:
        stream.close()


def test_screencast_of_another_accounts_session_is_404_and_of_an_ended_one_410(make_client: Any) -> None:
    owner = make_client(plan="pro")
    stranger = make_client(plan="pro", name="stranger")
    session_id = owner.post("/v1/computers", {}).json()["id"]
    for prefix in ("/v1", ""):
        refused = _open(stranger, session_id, prefix=prefix)
        assert refused.status_code == 404, refused.text
        assert refused.json()["code"] == "session_not_found"
    owner.delete(f"/v1/computers/{session_id}")
    ended = _open(owner, session_id)
    assert ended.status_code == 410, ended.text


def test_a_tenant_page_cannot_reach_its_browsers_devtools_endpoint(
    make_client: Any, pages_server: str
) -> None:
    """The egress filter refuses this host's browsers' DevTools ports even where loopback is
    allowed (the test configuration allows 127.0.0.1 for its pages)."""
    client = make_client(plan="pro")
    session_id = client.post("/v1/computers", {}).json()["id"]
    port = devtools_port(BrowserSession.objects.get(pk=session_id).profile_dir)
    assert port is not None
    refused = client.post(
        f"/v1/computers/{session_id}/navigate", {"url": f"http://127.0.0.1:{port}/json/version"}
    )
    assert refused.status_code == 200
    assert refused.json()["status"] == "error" and refused.json()["code"] == "blocked_address", refused.text

    probe = client.post(
        f"/v1/computers/{session_id}/navigate", {"url": f"{pages_server}/devtools_probe.html?port={port}"}
    )
    assert probe.json()["status"] == "success", probe.text

    def outcome() -> str:
        html = client.post(f"/v1/computers/{session_id}/html", {}).json()["result"]["html_content"]
        return html.split('<pre id="result">', 1)[1].split("</pre>", 1)[0]

    wait_until(lambda: outcome() != "pending", timeout=20, message="the page's WebSocket attempt")
    assert outcome() == "websocket:error"
