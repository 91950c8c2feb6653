"""GET /v1/usage reads its dates strictly: a bad one is a 400, never a 500."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def client(api_client: Any) -> Any:
    """The web answers all of these by itself: no worker (the fast tier)."""
    return api_client


def test_usage_reads_a_naive_date_time_as_utc(client):
    response = client.get("/v1/usage?from=2026-11-01T00:00:00&to=2026-11-02T12:30:00")
    assert response.status_code == 200, response.text
    assert response.json()["from"] == "2026-11-01T00:00:00Z"
    assert response.json()["to"] == "2026-11-02T12:30:00Z"


def test_usage_refuses_dates_that_do_not_exist(client):
    for query in ("to=2026-02-30T00:00:00", "from=2026-13-01T00:00:00Z", "from=2026-01-01T25:00:00"):
        response = client.get(f"/v1/usage?{query}")
        assert response.status_code == 400, (query, response.text)
        assert response.json()["code"] == "invalid"
        assert response.headers["x-should-retry"] == "false"
