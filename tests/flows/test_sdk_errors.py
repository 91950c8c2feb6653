"""The SDK's exec stream and its retry rules: a refusal that retrying cannot fix is sent once."""

from __future__ import annotations

import pytest
import tzafon
from tzafon import Lightcone


def _counting_sdk(client, *, api_key: str | None = None) -> tuple[Lightcone, list[str]]:
    """A default SDK client (max_retries=2) that records every request it sends."""
    sent: list[str] = []
    sdk = client.sdk(
        api_key=api_key or client.key,
        max_retries=2,
        event_hooks={"request": [lambda request: sent.append(request.url.path)]},
    )
    return sdk, sent


@pytest.fixture
def session_id(client) -> str:
    return client.post("/v1/computers", {}).json()["id"]


def test_sdk_exec_reads_one_error_line_and_auth_still_applies(client, session_id):
    sdk, sent = _counting_sdk(client)
    lines = list(sdk.computers.exec.create(session_id, command="ls"))
    assert [(line.type, line.code) for line in lines] == [("error", "action_not_supported")]
    assert "desktop" in lines[0].message
    assert sent == [f"/computers/{session_id}/exec"]

    # Authentication and tenancy run before any stream: 401 and 404 in JSON, not a 406.
    wrong, _ = _counting_sdk(client, api_key="bf_wrong")
    with pytest.raises(tzafon.AuthenticationError) as refused:
        list(wrong.computers.exec.create(session_id, command="ls"))
    assert refused.value.body["code"] == "unauthenticated"
    with pytest.raises(tzafon.NotFoundError):
        list(sdk.computers.exec.create("comp_missing", command="ls"))

    raw = client.post(
        f"/computers/{session_id}/exec", {"command": "ls"}, headers={"Accept": "application/x-ndjson"}
    )
    assert raw.status_code == 200 and raw.headers["Content-Type"] == "application/x-ndjson"
    # A client that asks for JSON gets the plain 501.
    plain = client.post(f"/computers/{session_id}/exec", {"command": "ls"})
    assert plain.status_code == 501 and plain.headers["x-should-retry"] == "false"


def test_sdk_sends_each_501_once(client, session_id):
    sdk, sent = _counting_sdk(client)
    calls = {
        "debug": lambda: sdk.computers.debug(session_id, command="ls"),
        "exec/sync": lambda: sdk.computers.exec.sync(session_id, command="ls"),
        "ws": lambda: sdk.computers.retrieve_ws(session_id),
    }
    for path, call in calls.items():
        sent.clear()
        with pytest.raises(tzafon.InternalServerError) as refused:
            call()
        assert refused.value.status_code == 501, path
        assert refused.value.response.headers["x-should-retry"] == "false", path
        assert sent == [f"/computers/{session_id}/{path}"], path


def test_sdk_streams_the_events_with_its_streaming_response(client, session_id):
    """`with_streaming_response.retrieve_events` is how the SDK reads an SSE stream (docs/streams.md);
    a wrong key is refused (401) before any stream."""
    sdk, sent = _counting_sdk(client)
    with sdk.computers.with_streaming_response.retrieve_events(session_id) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("event:")) == "event: status"
        assert next(line for line in lines if line.startswith("data:")).startswith('data: {"session_id"')
    assert sent == [f"/computers/{session_id}/events"]
    stranger, _ = _counting_sdk(client, api_key="bf_wrong")
    with pytest.raises(tzafon.AuthenticationError):
        stranger.computers.with_streaming_response.retrieve_events(session_id).__enter__()


def test_permanent_errors_say_do_not_retry_and_transient_ones_do_not(client, session_id):
    from accounts.models import Plan

    assert client.get("/v1/computers/comp_missing").headers["x-should-retry"] == "false"  # 404
    assert client.get("/v1/nowhere").headers["x-should-retry"] == "false"  # Django's 404
    bad = client.post(f"/v1/computers/{session_id}/navigate", {})
    assert bad.status_code == 400 and bad.headers["x-should-retry"] == "false"
    # 429 (here the plan's concurrency limit) must stay retryable: no header that forbids it.
    Plan.objects.filter(name="pro").update(max_concurrent_sessions=1)
    limited = client.post("/v1/computers", {})
    assert limited.status_code == 429, limited.text
    assert "x-should-retry" not in limited.headers
    client.delete(f"/v1/computers/{session_id}")
    ended = client.post(f"/v1/computers/{session_id}/keepalive")
    assert ended.status_code == 410 and ended.headers["x-should-retry"] == "false"


def test_a_lifetime_that_ends_before_the_browser_is_up_is_a_terminated_session_not_a_503(client):
    # Found by schemathesis: the 503 it answered made the SDK send the create three times.
    response = client.post("/v1/computers", {"max_lifetime_seconds": 1})
    assert response.status_code == 201, response.text
    body = response.json()
    if body["status"] == "terminated":  # the usual case: a browser takes more than a second to start
        assert body["ended_reason"] == "max_lifetime"
    assert client.post(f"/v1/computers/{body['id']}/wait", {"ms": 1500}).status_code in (200, 410)


def test_a_body_over_the_upload_limit_is_413_json(api_client):
    big = {"text": "x" * (3 * 1024 * 1024)}
    response = api_client.post("/v1/computers/comp_missing/type", big)
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"
    assert response.headers["x-should-retry"] == "false"
