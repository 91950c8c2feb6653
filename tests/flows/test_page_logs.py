"""GET /v1/computers/{id}/logs: console messages, page errors and network requests of a real
Chromium, collected on the worker host through DevTools, through the API."""

from __future__ import annotations

import json
from typing import Any

from tests.support.processes import wait_until


def _logs(client: Any, session_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/computers/{session_id}/logs", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _all(client: Any, session_id: str) -> list[dict[str, Any]]:
    return list(_logs(client, session_id, limit=1000)["data"])


def _click_go(client: Any, session_id: str) -> None:
    clicked = client.post(f"/v1/computers/{session_id}/click", {"x": 150, "y": 90})
    assert clicked.json()["status"] == "success", clicked.text


def test_logs_hold_the_console_errors_and_requests_of_a_test_page_paged_filtered_and_exported(
    make_client: Any, pages_server: str
) -> None:
    client = make_client(plan="pro")
    session_id = client.sdk(max_retries=3).computers.create(kind="browser").id  # the tzafon SDK's create
    nav = client.post(f"/v1/computers/{session_id}/navigate", {"url": f"{pages_server}/logs.html?tag=one"})
    assert nav.json()["status"] == "success", nav.text
    _click_go(client, session_id)
    # Console messages logged before the collector attached are replayed by DevTools, so this
    # shows the collector is attached; from now on every request is seen.
    wait_until(
        lambda: any(e["message"] == "hello from the page one" for e in _all(client, session_id)),
        timeout=20,
        message="the first page's console message",
    )
    nav = client.post(f"/v1/computers/{session_id}/navigate", {"url": f"{pages_server}/logs.html?tag=two"})
    assert nav.json()["status"] == "success", nav.text
    _click_go(client, session_id)

    def complete() -> bool:
        entries = _all(client, session_id)
        return any(
            e["type"] == "error" and "boom from the page two" in (e["message"] or "") for e in entries
        ) and (sum(1 for e in entries if e["type"] == "network" and "two" in (e["url"] or "")) >= 3)

    wait_until(complete, timeout=20, message="the second page's error and requests")
    entries = _all(client, session_id)
    by_message = {e["message"]: e for e in entries if e["type"] == "console"}
    assert by_message["hello from the page two"]["level"] == "info"
    assert by_message["hello from the page two"]["source"] == "console.log"
    assert by_message["a warning two"]["level"] == "warning"
    assert by_message["an error two Object"]["level"] == "error"
    error = next(e for e in entries if e["type"] == "error" and "boom from the page two" in e["message"])
    assert error["level"] == "error" and error["url"].endswith("/logs.js")

    network = {e["url"].removeprefix(pages_server): e for e in entries if e["type"] == "network"}
    document = network["/logs.html?tag=two"]
    assert document["method"] == "GET" and document["status"] == 200 and document["level"] == "info"
    assert document["resource_type"] == "Document" and document["bytes"] > 0
    assert document["duration_ms"] is not None and document["duration_ms"] >= 0
    missing = network["/missing-two.json"]
    assert missing["status"] == 404 and missing["level"] == "warning"
    posted = network["/logs.html?fetched=two"]
    assert posted["method"] == "POST" and posted["status"] == 501 and posted["level"] == "error"
    # Never a request body, a cookie or a header.
    assert "secret-body" not in json.dumps(entries)
    assert not any(key in e for e in entries for key in ("headers", "cookies", "postData"))

    # Filters and the cursor.
    only_network = _logs(client, session_id, type="network", limit=1000)["data"]
    assert only_network and {e["type"] for e in only_network} == {"network"}
    errors_only = _logs(client, session_id, level="error", limit=1000)["data"]
    assert errors_only and {e["level"] for e in errors_only} == {"error"}
    paged, after = [], None
    while True:
        page = _logs(client, session_id, limit=3, **({"after": after} if after else {}))
        paged += page["data"]
        if not page["has_more"]:
            break
        after = page["next_cursor"]
    assert [e["id"] for e in paged] == [e["id"] for e in entries]

    exported = client.get(f"/v1/computers/{session_id}/logs", params={"format": "ndjson"})
    assert exported.status_code == 200
    assert exported.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert [e["id"] for e in lines][: len(entries)] == [e["id"] for e in entries]

    # Kept after the session ended.
    assert client.delete(f"/v1/computers/{session_id}").status_code == 200
    after_end = _logs(client, session_id, limit=1000)
    assert after_end["collecting"] is False
    assert len(after_end["data"]) >= len(entries)


def test_logs_of_another_accounts_session_are_404_and_bad_filters_400(make_client: Any) -> None:
    owner = make_client(plan="pro")
    stranger = make_client(plan="pro", name="stranger")
    session_id = owner.sdk(max_retries=3).computers.create(kind="browser").id
    refused = stranger.get(f"/v1/computers/{session_id}/logs")
    assert refused.status_code == 404 and refused.json()["code"] == "session_not_found"
    assert stranger.get(f"/v1/computers/{session_id}/logs", params={"format": "ndjson"}).status_code == 404
    assert owner.get("/v1/computers/comp_unknown/logs").status_code == 404
    for params in (
        {"type": "cookies"},
        {"level": "fatal"},
        {"after": "x"},
        {"limit": "0"},
        {"format": "xml"},
    ):
        bad = owner.get(f"/v1/computers/{session_id}/logs", params=params)
        assert bad.status_code == 400, (params, bad.text)
        assert bad.json()["code"]
