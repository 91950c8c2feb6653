"""Whole lifecycle flows through the HTTP API and the public tzafon SDK, on real browsers."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from sessions.models import BrowserSession
from tests.support.processes import browser_processes, wait_until


def _session_processes(session_id: str) -> list[tuple[int, str]]:
    return browser_processes(f"{settings.BROWSER_PROFILE_ROOT}/{session_id}/")


@pytest.mark.parametrize("prefix", ["", "/v1"])
def test_sdk_context_manager_creates_keeps_alive_and_terminates(client, prefix):
    sdk = client.sdk(prefix)
    with sdk.computer.create(kind="browser") as computer:
        session_id = computer.id
        info = computer.retrieve()
        assert info.id == session_id
        assert info.status == "ready"
        assert _session_processes(session_id), "a live session has a running browser"
        kept = computer.keep_alive()
        assert kept["status"] == "running"
        assert kept["id"] == session_id
    row = BrowserSession.objects.get(pk=session_id)
    assert row.status == "terminated"
    assert row.ended_reason == "user"
    assert row.browser_released_at is not None
    assert _session_processes(session_id) == []


def test_create_applies_plan_defaults(free_client):
    client = free_client
    response = client.post("/v1/computers", {})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("comp_")
    assert body["status"] == "ready"
    assert body["kind"] == "browser"
    assert body["max_lifetime_seconds"] == 3600  # free plan maximum
    assert body["inactivity_timeout_seconds"] == 120
    assert body["idle_timeout_enabled"] is True and body["auto_kill"] is True
    assert body["display"] == {"width": 1024, "height": 768, "scale": 1.0}
    assert body["created_at"].endswith("Z") and body["expires_at"].endswith("Z")
    row = BrowserSession.objects.get(pk=body["id"])
    assert row.expires_at == row.created_at + timedelta(seconds=3600)
    assert row.idle_expires_at == row.last_activity_at + timedelta(seconds=120)
    assert row.backend == "local" and row.webdriver_session_id and row.browser_pid


def test_create_accepts_tzafon_and_notexai_aliases_and_echoes_unsupported_options(client):
    response = client.post(
        "/computers",
        {
            "timeout_seconds": 600,
            "auto_kill": False,
            "session_timeout": 30,
            "persistent": True,
            "context_id": "run-7",
            "stealth": {"level": 1},
            "display": {"width": 800, "height": 600},
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["max_lifetime_seconds"] == 600
    assert body["idle_timeout_enabled"] is False and body["idle_expires_at"] is None
    assert body["inactivity_timeout_seconds"] == 30
    assert body["persistent"] is True and body["context_id"] == "run-7"
    assert body["stealth"] == {"level": 1}
    assert body["display"]["width"] == 800

    response = client.post("/computers", {"keep_alive": True})
    assert response.status_code == 201, response.text
    assert response.json()["idle_timeout_enabled"] is False


@pytest.mark.parametrize(
    "payload",
    [
        {"max_lifetime_seconds": "60"},
        {"max_lifetime_seconds": 0},
        {"max_lifetime_seconds": -5},
        {"max_lifetime_seconds": 10**12},
        {"max_lifetime_seconds": 12.5},
        {"inactivity_timeout_seconds": 0},
        {"idle_timeout_enabled": "false"},
        {"auto_kill": 1},
        {"idle_timeout_enabled": True, "auto_kill": False},
        {"timeout_seconds": 60, "max_lifetime_seconds": 120},
        {"display": {"width": 10}},
        {"display": {"scale": "2"}},
        {"display": "big"},
        {"kind": "desktop"},
        {"kind": 3},
        ["not", "an", "object"],
    ],
)
def test_bad_create_input_is_400_and_creates_nothing(api_client, payload):
    response = api_client.post("/v1/computers", payload)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "error" and body["code"] and body["detail"] == body["error_message"]
    assert not BrowserSession.objects.exists()


def test_malformed_json_is_400(api_client):
    response = api_client.post("/v1/computers", data="{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_lifetime_above_plan_maximum_names_the_maximum(make_api_client):
    client = make_api_client(plan="free")
    response = client.post("/v1/computers", {"max_lifetime_seconds": 3601})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "lifetime_above_plan_maximum"
    assert "3600" in body["detail"]
    assert not BrowserSession.objects.exists()


def test_concurrency_limit_is_429_with_retry_after_and_frees_on_delete(free_client):
    client = free_client
    first = client.post("/v1/computers", {}).json()
    client.post("/v1/computers", {})
    refused = client.post("/v1/computers", {})
    assert refused.status_code == 429
    assert refused.json()["code"] == "concurrency_limit"
    assert "2 concurrent sessions" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert BrowserSession.objects.count() == 2
    assert client.delete(f"/v1/computers/{first['id']}").status_code == 200
    assert client.post("/v1/computers", {}).status_code == 201


def test_concurrent_creates_never_exceed_the_plan_limit(free_client):
    client = free_client
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(lambda _: client.post("/v1/computers", {}).status_code, range(4)))
    assert codes == [201, 201, 429, 429]
    assert BrowserSession.objects.filter(status="ready").count() == 2


def test_delete_is_idempotent_and_frees_the_browser(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    assert _session_processes(session_id)
    first = client.delete(f"/computers/{session_id}")
    assert first.status_code == 200
    assert first.json()["status"] == "terminated"
    assert _session_processes(session_id) == []
    again = client.delete(f"/computers/{session_id}")
    assert again.status_code == 200
    assert again.json()["ended_reason"] == "user"
    assert client.delete("/computers/comp_doesnotexist").status_code == 404
    retrieved = client.get(f"/computers/{session_id}").json()
    assert retrieved["status"] == "terminated" and retrieved["ended_reason"] == "user"


def test_keepalive_on_ended_session_is_410(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    client.delete(f"/v1/computers/{session_id}")
    response = client.post(f"/v1/computers/{session_id}/keepalive")
    assert response.status_code == 410
    assert response.json()["code"] == "session_ended"


def test_idle_session_is_terminated_by_sweep(client):
    created = client.post("/v1/computers", {"inactivity_timeout_seconds": 2}).json()
    # Read the row, not the API: a request would end the session itself.
    row = wait_until(
        lambda: BrowserSession.objects.filter(pk=created["id"], status="terminated").first(),
        timeout=15,
        message="the sweep to end the idle session",
    )
    assert row.ended_reason == "idle"
    lateness = (row.ended_at - row.idle_expires_at).total_seconds()
    assert 0 <= lateness < settings.SESSION_SWEEP_INTERVAL_SECONDS + 3
    wait_until(lambda: _session_processes(created["id"]) == [], timeout=15, message="browser gone")


def test_keepalive_postpones_idle_expiry(client):
    import time

    session_id = client.post("/v1/computers", {"inactivity_timeout_seconds": 3}).json()["id"]
    for _ in range(4):  # 4.8 s in all, well past the 3 s idle timeout
        time.sleep(1.2)  # the client's pace, under the timeout: what the test is about
        response = client.post(f"/v1/computers/{session_id}/keepalive")
        assert response.status_code == 200, response.text
    assert BrowserSession.objects.get(pk=session_id).status == "running"
    row = wait_until(
        lambda: BrowserSession.objects.filter(pk=session_id, status="terminated").first(),
        timeout=15,
        message="idle expiry after keepalives stop",
    )
    assert row.ended_reason == "idle"


def test_max_lifetime_ends_session_even_with_idle_timeout_disabled(client):
    created = client.post("/v1/computers", {"max_lifetime_seconds": 3, "idle_timeout_enabled": False}).json()
    row = wait_until(
        lambda: BrowserSession.objects.filter(pk=created["id"], status="terminated").first(),
        timeout=15,
        message="max lifetime",
    )
    assert row.ended_reason == "max_lifetime"


def test_request_on_expired_session_ends_it_at_once(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    BrowserSession.objects.filter(pk=session_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.post(f"/v1/computers/{session_id}/keepalive")
    assert response.status_code == 410
    status = client.get(f"/v1/computers/{session_id}/status").json()
    assert status["status"] == "terminated" and status["ended_reason"] == "max_lifetime"


def test_list_shows_live_sessions_by_default_and_ended_on_request(client):
    live = client.post("/v1/computers", {}).json()["id"]
    ended = client.post("/v1/computers", {}).json()["id"]
    client.delete(f"/v1/computers/{ended}")
    assert [s["id"] for s in client.get("/computers").json()] == [live]
    assert [s["id"] for s in client.get("/computers?status=terminated").json()] == [ended]
    assert {s["id"] for s in client.get("/computers?status=all").json()} == {live, ended}
    assert client.get("/computers?status=bogus").status_code == 400


def test_another_accounts_session_looks_missing(make_client):
    owner, other = make_client(name="owner"), make_client(name="other")
    session_id = owner.post("/v1/computers", {}).json()["id"]
    for method, path in [
        ("GET", f"/v1/computers/{session_id}"),
        ("GET", f"/v1/computers/{session_id}/status"),
        ("POST", f"/v1/computers/{session_id}/keepalive"),
        ("DELETE", f"/v1/computers/{session_id}"),
    ]:
        response = other.request(method, path)
        assert response.status_code == 404, (method, path)
    assert other.get("/v1/computers").json() == []
    assert BrowserSession.objects.get(pk=session_id).status == "ready"


def test_browser_killed_from_outside_is_reconciled_as_crashed(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    pid = BrowserSession.objects.get(pk=session_id).browser_pid
    os.killpg(pid, signal.SIGKILL)
    row = wait_until(
        lambda: BrowserSession.objects.filter(pk=session_id, status="terminated").first(),
        timeout=20,
        message="reconcile to notice the dead browser",
    )
    assert row.ended_reason == "crashed"
    wait_until(lambda: _session_processes(session_id) == [], timeout=15, message="leftovers killed")


def test_a_tiny_client_read_timeout_does_not_shrink_the_create_wait_below_the_floor(client, settings):
    # A client that claims to give up after 2 s would leave 0.1 s: every create would fail after
    # starting a browser, for free. The floor keeps the wait (here as long as the configured one).
    settings.SESSION_CREATE_MIN_WAIT_SECONDS = settings.SESSION_CREATE_WAIT_SECONDS
    response = client.post("/v1/computers", {}, headers={"x-stainless-read-timeout": "2"})
    assert response.status_code == 201, response.text
    assert BrowserSession.objects.get(account=client.account).status in ("ready", "running")


def test_the_create_wait_budget(rf, settings):
    from sessions.api.views import client_wait_budget

    def budget(header: str | None, floor: float = 5) -> float:
        headers = {"HTTP_X_STAINLESS_READ_TIMEOUT": header} if header is not None else {}
        return client_wait_budget(rf.post("/v1/computers", **headers), 30, floor=floor)

    assert budget(None) == 30
    assert budget("0.5") == 5  # the floor, not 0.1
    assert budget("2") == 5
    assert budget("20") == 18  # 2 s before the client gives up
    assert budget("600") == 30  # never past our own bound
    assert budget("garbage") == 30
    assert client_wait_budget(rf.post("/x", HTTP_X_STAINLESS_READ_TIMEOUT="2"), 3, floor=5) == 3


def test_no_trailing_slash_redirects(api_client):
    response = api_client.http.post(
        api_client.base_url + "/computers/",
        json={},
        headers={"Authorization": f"Bearer {api_client.key}"},
        allow_redirects=False,
    )
    assert response.status_code == 404
    assert not BrowserSession.objects.exists()


def test_a_create_that_outlives_the_client_timeout_leaves_no_browser_and_no_charge(client, settings):
    # Without the floor, a client that gives up after 2 s leaves us 0.1 s (we answer 2 s before
    # it gives up): too little for any Chromium start, so the create gives up and says so.
    settings.SESSION_CREATE_MIN_WAIT_SECONDS = 0
    response = client.post("/v1/computers", {}, headers={"x-stainless-read-timeout": "2"})
    assert response.status_code == 503
    assert response.json()["code"] == "browser_start_failed"
    row = BrowserSession.objects.get(account=client.account)
    assert row.status == "terminated" and row.ended_reason == "start_failed"
    # The worker finishes starting the browser, finds the session ended and stops it itself.
    wait_until(
        lambda: BrowserSession.objects.filter(pk=row.pk, browser_released_at__isnull=False).exists(),
        timeout=30,
        message="the stop of the abandoned start",
    )
    wait_until(lambda: _session_processes(row.pk) == [], timeout=20, message="no browser left")
    from billing.models import Balance

    assert Balance.objects.get(account=client.account).credits == 100_000
