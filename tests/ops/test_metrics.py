"""/metrics: Prometheus text that prometheus-client parses, counters that follow the rows, and
no answer without the token or an allowed address."""

from __future__ import annotations

import pytest
import requests
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "metrics-test-token"


@pytest.fixture
def http():
    return Client()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_refused_without_the_token_or_an_allowed_address(db, http, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOW_CIDRS = []
    disabled = http.get("/metrics")
    assert disabled.status_code == 403 and disabled.json()["code"] == "metrics_disabled"

    settings.METRICS_TOKEN = TOKEN
    assert http.get("/metrics").status_code == 401
    wrong = http.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401 and wrong.json()["code"] == "unauthenticated"
    assert wrong["WWW-Authenticate"].startswith("Bearer")
    assert http.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200

    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOW_CIDRS = ["10.0.0.0/8"]
    assert http.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    allowed = http.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert allowed.status_code == 200
    assert allowed["Content-Type"].startswith("text/plain")


def test_counters_move_when_actions_run(client, pages_server, settings):
    """Scrapes over real HTTP (the live server) before and after a session's work."""
    settings.METRICS_TOKEN = TOKEN
    settings.TRUSTED_PROXY_COUNT = 1  # the test stands for the proxy: X-Forwarded-For is its entry
    settings.AUTH_LOCKOUT_MAX_FAILURES = 2

    def scrape():
        response = requests.get(
            client.base_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        assert response.status_code == 200, response.text
        return _samples(response.text)

    before = scrape()
    session_id = client.post("/v1/computers", {}).json()["id"]
    assert (
        client.post(f"/v1/computers/{session_id}/navigate", {"url": pages_server + "/flow.html"}).json()[
            "status"
        ]
        == "success"
    )
    assert client.post(f"/v1/computers/{session_id}/screenshot", {}).json()["status"] == "success"
    during = scrape()
    assert client.delete(f"/v1/computers/{session_id}").status_code in (200, 204)
    # Failed authentications from another address (a forwarded one), until it is locked out.
    for _ in range(2):
        bad = requests.get(
            client.base_url + "/v1/computers",
            headers={"Authorization": "Bearer wrong", "X-Forwarded-For": "127.0.0.88"},
            timeout=30,
        )
        assert bad.status_code == 401
    after = scrape()

    for type_ in ("navigate", "screenshot"):
        key = {"type": type_, "status": "succeeded"}
        assert (
            _value(during, "browserfleet_actions_total", **key)
            == _value(before, "browserfleet_actions_total", **key) + 1
        )
        assert _value(during, "browserfleet_action_latency_seconds_count", type=type_) == (
            _value(before, "browserfleet_action_latency_seconds_count", type=type_) + 1
        )
    assert (
        _value(during, "browserfleet_sessions_created_total")
        == _value(before, "browserfleet_sessions_created_total") + 1
    )
    assert _value(during, "browserfleet_sessions_live", status="running") >= 1
    assert _value(during, "browserfleet_credits_charged_total", kind="action") > _value(
        before, "browserfleet_credits_charged_total", kind="action"
    )
    assert _value(during, "browserfleet_session_create_latency_seconds_count") == (
        _value(before, "browserfleet_session_create_latency_seconds_count") + 1
    )
    assert _value(after, "browserfleet_sessions_ended_total", reason="user") == (
        _value(before, "browserfleet_sessions_ended_total", reason="user") + 1
    )
    assert (
        _value(after, "browserfleet_auth_failures_total")
        == _value(before, "browserfleet_auth_failures_total") + 2
    )
    assert (
        _value(after, "browserfleet_auth_lockouts_total")
        == _value(before, "browserfleet_auth_lockouts_total") + 1
    )
    assert _value(after, "browserfleet_workers_online") >= 1
    assert _value(after, "browserfleet_redis_up") == 1
    assert ("browserfleet_queue_depth", (("queue", "actions"),)) in after
