"""The live viewer: a signed, short-lived link, opened in a real headless Chromium (another
session's browser, through the egress filter), that shows the screencast and, when
interactive, sends clicks as ordinary billed actions."""

from __future__ import annotations

import re
import time
from typing import Any

import requests
from django.core import signing

from sessions.live_viewer import _SALT
from sessions.models import Action
from tests.support.processes import wait_until


def _viewer_image(client: Any, browser_session: str) -> dict[str, str]:
    html = client.post(f"/v1/computers/{browser_session}/html", {}).json()["result"]["html_content"]
    tag = re.search(r"<img[^>]*id=\"screen\"[^>]*>", html)
    return dict(re.findall(r'data-(\w+)="([^"]*)"', tag.group(0))) if tag else {}


def test_viewer_renders_frames_and_an_interactive_click_lands_as_a_billed_action(
    make_client: Any, pages_server: str
) -> None:
    client = make_client(plan="pro")
    watched = client.post("/v1/computers", {}).json()["id"]
    page = client.post(f"/v1/computers/{watched}/navigate", {"url": f"{pages_server}/screencast.html"})
    assert page.json()["status"] == "success", page.text
    person = client.post("/v1/computers", {}).json()["id"]  # the browser a person would use

    made = client.post(f"/v1/computers/{watched}/live", {"interactive": True})
    assert made.status_code == 201, made.text
    link = made.json()
    assert link["interactive"] is True and link["expires_at"]
    assert client.key not in link["url"] and "/v1/live/" in link["url"]
    page_response = requests.get(link["url"], timeout=10)
    assert page_response.status_code == 200
    csp = page_response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in page_response.text and "http" not in page_response.text.split("<body", 1)[1]

    opened = client.post(f"/v1/computers/{person}/navigate", {"url": link["url"]})
    assert opened.json()["status"] == "success", opened.text
    wait_until(
        lambda: int(_viewer_image(client, person).get("frames", "0")) > 0, timeout=30, message="frames"
    )
    image = _viewer_image(client, person)
    assert int(image["width"]) > 0 and int(image["height"]) > 0

    before = Action.objects.filter(session_id=watched, type="click").count()
    clicked = client.post(
        f"/v1/computers/{person}/step", {"action": "click", "selector": "#screen", "timeout_ms": 5000}
    )
    assert clicked.json()["status"] == "success", clicked.text
    wait_until(
        lambda: Action.objects.filter(session_id=watched, type="click", status="succeeded").count() > before,
        timeout=30,
        message="the viewer's click to run on the watched session",
    )
    click = Action.objects.filter(session_id=watched, type="click").order_by("-id").first()
    assert click is not None and click.price > 0  # an ordinary, billed action
    html = client.post(f"/v1/computers/{watched}/html", {}).json()["result"]["html_content"]
    assert 'class="on"' in html  # the click landed on the watched page


def test_viewer_link_is_read_only_by_default_and_stops_at_expiry_and_with_the_session(
    make_client: Any,
) -> None:
    client = make_client(plan="pro")
    stranger = make_client(plan="pro", name="stranger")
    session_id = client.post("/v1/computers", {}).json()["id"]
    assert stranger.post(f"/v1/computers/{session_id}/live", {}).status_code == 404
    link = client.post(f"/v1/computers/{session_id}/live", {}).json()
    assert link["interactive"] is False
    url = link["url"]
    assert requests.get(url, timeout=10).status_code == 200
    refused = requests.post(url + "/input", json={"action": {"type": "click", "x": 1, "y": 1}}, timeout=10)
    assert refused.status_code == 400 and refused.json()["code"] == "live_view_read_only"
    assert not Action.objects.filter(session_id=session_id).exists()

    token = url.rsplit("/", 1)[1]
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert requests.get(url.replace(token, forged), timeout=10).status_code == 404
    payload = {"s": session_id, "a": client.account.pk, "i": False, "e": int(time.time()) - 1}
    expired = signing.dumps(payload, salt=_SALT)
    assert requests.get(url.replace(token, expired), timeout=10).status_code == 404
    assert requests.get(url.replace(token, expired) + "/feed", timeout=10).status_code == 404

    client.delete(f"/v1/computers/{session_id}")
    assert requests.get(url, timeout=10).status_code == 410
    assert requests.get(url + "/feed", timeout=10).status_code == 410
