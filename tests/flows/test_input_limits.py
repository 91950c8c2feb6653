"""Input a single request may not ask for: over-limit bodies are 413, over-limit actions 400,
and nothing is queued or started for them."""

from __future__ import annotations

import pytest

from sessions.input_limits import MAX_DRAG_POINTS
from sessions.models import Action, BrowserSession


def test_an_oversized_body_is_413_before_anything_runs(api_client, settings):
    settings.API_MAX_BODY_BYTES = 4096
    response = api_client.post("/v1/computers", {"pad": "x" * 5000})
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "payload_too_large"
    assert response.json()["limit"] == 4096
    assert not BrowserSession.objects.exists()


def test_the_default_body_cap_holds_for_a_body_without_fields_we_read(api_client):
    # Unknown fields are ignored, so without a cap this was a 201 after decoding 3 MB of JSON.
    response = api_client.post("/v1/computers", {"pad": "x" * (3 * 1024 * 1024)})
    assert response.status_code == 413, response.text
    assert not BrowserSession.objects.exists()


def test_a_create_asking_for_too_many_pixels_is_400(api_client):
    response = api_client.post("/v1/computers", {"display": {"width": 3840, "height": 2160, "scale": 4}})
    assert response.status_code == 400, response.text
    assert "device pixels" in response.json()["detail"]
    assert not BrowserSession.objects.exists()


def _schema(fields: int, nested: int = 0) -> dict:
    inner = {
        f"f{i}": {"selector": f".c{i}", "fields": {f"g{j}": "b" for j in range(nested)}}
        for i in range(fields)
    }
    return {"fields": inner if nested else {f"f{i}": f".c{i}" for i in range(fields)}}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("drag", {"path": [{"x": i % 500, "y": 10} for i in range(MAX_DRAG_POINTS + 1)]}),
        ("viewport", {"width": 3840, "height": 2160, "scale_factor": 4}),
        ("viewport", {"width": 3840, "height": 2160, "scale_factor": 2.5}),
        ("execute", {"action": {"type": "set_viewport", "width": 2560, "height": 2160, "scale_factor": 3}}),
        ("scrape", {"schema": _schema(101)}),
        ("scrape", {"schema": _schema(20, nested=10)}),  # 220 fields in all
        ("scrape", {"schema": {"fields": {"a": "x" * 1001}}}),
        ("scrape", {"schema": {"fields": {"n" * 101: ".a"}}}),
        ("scrape", {"schema": {"selector": "x" * 1001, "fields": {"a": ".a"}}}),
        (
            "batch",
            {"actions": [{"type": "wait", "ms": 30_000}, {"type": "wait", "ms": 30_000, "settle_ms": 1}]},
        ),
        ("batch", {"actions": [{"type": "wait", "ms": 1, "settle_ms": 10_000} for _ in range(7)]}),
        ("key-down", {"keys": ["a"] * 9}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_over_limit_actions_are_400_and_run_nothing(client, path, body):
    session_id = client.post("/v1/computers", {}).json()["id"]
    response = client.post(f"/v1/computers/{session_id}/{path}", body)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "error"
    assert not Action.objects.exists()


def test_within_the_limits_still_works(client, pages_server):
    session_id = client.post(
        "/v1/computers", {"display": {"width": 2560, "height": 1600, "scale": 2}}
    ).json()["id"]
    drag = client.post(f"/v1/computers/{session_id}/drag", {"path": [{"x": i, "y": 10} for i in range(50)]})
    assert drag.json()["status"] == "success", drag.text
    scrape = client.post(f"/v1/computers/{session_id}/scrape", {"schema": _schema(100)})
    assert scrape.status_code == 200, scrape.text
