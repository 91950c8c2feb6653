"""Browser actions through the API and the public tzafon SDK, on pages the tests serve."""

from __future__ import annotations

import os
import signal
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from itertools import pairwise

import pytest
import requests
import tzafon
from django.conf import settings
from django.utils import timezone

from sessions.models import Action, BrowserSession
from tests.support.processes import wait_until

BUTTON = (200, 140)  # centre of #go in CSS pixels (tests/pages/flow.html)
FIELD = (250, 255)  # centre of #field


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def _html(client, session_id: str) -> str:
    body = client.post(f"/v1/computers/{session_id}/html", {}).json()
    assert body["status"] == "success", body
    return body["result"]["html_content"]


@pytest.fixture
def session_id(client, pages_server) -> str:
    session_id = client.post("/v1/computers", {}).json()["id"]
    response = client.post(f"/v1/computers/{session_id}/navigate", {"url": pages_server + "/flow.html"})
    assert response.json()["status"] == "success", response.text
    return session_id


def test_sdk_script_drives_a_page_at_screenshot_coordinates(client, pages_server):
    sdk = client.sdk()
    scale = 2.0
    with sdk.computer.create(
        kind="browser", display={"width": 800, "height": 600, "scale": scale}
    ) as computer:
        assert computer.navigate(pages_server + "/flow.html").status == "success"

        shot = computer.screenshot()
        url = computer.get_screenshot_url(shot)
        assert url.startswith("http")
        image = requests.get(url, timeout=10)
        assert image.status_code == 200
        assert image.headers["Content-Type"] == "image/png"
        assert _png_size(image.content) == (1600, 1200)

        # A person looking at the 2x screenshot sees the button's centre at twice its CSS position.
        assert computer.click(BUTTON[0] * scale, BUTTON[1] * scale).status == "success"
        assert "clicked 1" in computer.get_html_content(computer.html())

        computer.click(FIELD[0] * scale, FIELD[1] * scale)
        computer.type("hello fleet")
        assert "typed:hello fleet" in computer.get_html_content(computer.html())

        computer.hotkey("Control", "a")
        computer.type("x")
        assert "typed:x</div>" in computer.get_html_content(computer.html())

        waited = computer.wait(0.3)
        assert waited.status == "success"

        batch = computer.batch(
            [
                {"type": "click", "x": BUTTON[0] * scale, "y": BUTTON[1] * scale, "button": "left"},
                {"type": "keypress", "keys": ["End"]},
                {"type": "wait", "ms": 10},
                {"type": "get_html_content"},
            ]
        )
        assert batch["success"] is True and batch["completed"] == 4
        assert "clicked 2" in batch["results"][3]["result"]["html_content"]

        data_uri = computer.get_screenshot_url(computer.screenshot(base64=True))
        assert data_uri.startswith("data:image/png;base64,")

        tabs = sdk.computers.tabs
        created = tabs.create(computer.id, url=pages_server + "/flow.html?second")
        assert created.status == "success", created
        listed = tabs.list(computer.id).result["tabs"]
        assert len(listed) == 2
        main = [t for t in listed if t["is_main_tab"]]
        assert len(main) == 1 and main[0]["url"].endswith("?second")
        other = next(t for t in listed if not t["is_main_tab"])
        assert tabs.switch(other["id"], id=computer.id).status == "success"
        # Workers record the main tab for the next action instead of asking the browser each time.
        assert BrowserSession.objects.get(pk=computer.id).main_tab_id == other["id"]
        closed = tabs.delete(main[0]["id"], id=computer.id)
        assert closed.status == "success"
        last = tabs.list(computer.id).result["tabs"]
        assert [t["id"] for t in last] == [other["id"]]
        refused = tabs.delete(other["id"], id=computer.id)
        assert refused.status == "error" and refused.error_message

        keep = computer.keep_alive()
        assert keep["status"] == "running"


def test_execute_accepts_the_contract_types_and_openai_shapes(client, session_id):
    def execute(action):
        response = client.post(f"/v1/computers/{session_id}/execute", {"action": action})
        assert response.status_code == 200, response.text
        return response.json()

    assert execute({"type": "click", "x": BUTTON[0], "y": BUTTON[1]})["status"] == "success"
    assert execute({"type": "double_click", "x": BUTTON[0], "y": BUTTON[1]})["status"] == "success"
    assert execute({"type": "right_click", "x": 10, "y": 10})["status"] == "success"
    assert execute({"type": "click", "x": 10, "y": 10, "button": "wheel"})["status"] == "success"
    assert execute({"type": "move", "x": 5, "y": 5})["status"] == "success"
    assert execute({"type": "drag", "path": [{"x": 10, "y": 10}, {"x": 50, "y": 60}]})["status"] == "success"
    assert (
        execute({"type": "scroll", "x": 10, "y": 10, "scroll_x": 0, "scroll_y": 100})["status"] == "success"
    )
    assert (
        execute({"type": "point_and_type", "x": FIELD[0], "y": FIELD[1], "text": "abc"})["status"]
        == "success"
    )
    assert execute({"type": "key_down", "keys": ["shift"]})["status"] == "success"
    assert execute({"type": "key_up", "keys": ["shift"]})["status"] == "success"
    assert (
        execute({"type": "set_viewport", "width": 900, "height": 700, "scale_factor": 1})["status"]
        == "success"
    )
    tabs = execute({"type": "list_tabs"})
    assert len(tabs["result"]["tabs"]) == 1
    with_context = execute({"type": "wait", "ms": 1, "include_context": True})
    assert with_context["page_context"]["url"].endswith("/flow.html")
    assert with_context["page_context"]["viewport_width"] == 900
    # The older flattened form of /execute.
    flat = client.post(f"/v1/computers/{session_id}/execute", {"type": "go_to_url", "url": "about:blank"})
    assert flat.status_code == 400  # not http(s)
    html = execute({"type": "get_html_content"})
    assert "typed:abc" in html["result"]["html_content"]
    assert BrowserSession.objects.get(pk=session_id).display_width == 900


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("navigate", {}),
        ("navigate", {"url": "ftp://example.com/x"}),
        ("navigate", {"url": "javascript:alert(1)"}),
        ("navigate", {"url": 5}),
        ("click", {"x": "1", "y": 2}),
        ("click", {"x": 1}),
        ("type", {}),
        ("hotkey", {"keys": []}),
        ("scroll", {"dx": "down"}),
        ("viewport", {"width": 10, "height": 10}),
        ("execute", {"action": {"type": "teleport"}}),
        ("execute", {"action": {}}),
        ("execute", {"action": "click"}),
        ("batch", {"actions": []}),
        ("batch", {"actions": [{"type": "wait", "ms": 1}, {"type": "click"}]}),
        ("step", {"action": "fill", "selector": "#field"}),
        ("scrape", {"schema": {"fields": {}}}),
    ],
)
def test_invalid_action_input_is_400_and_runs_nothing(client, session_id, path, body):
    before = Action.objects.count()
    response = client.post(f"/v1/computers/{session_id}/{path}", body)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "error"
    assert Action.objects.count() == before


def test_unsupported_actions_are_501(client, session_id):
    # change-proxy is served (tests/flows/test_proxies.py).
    for path in ("debug", "exec", "exec/sync"):
        response = client.post(f"/v1/computers/{session_id}/{path}", {"command": "ls"})
        assert response.status_code == 501, path
        assert response.json()["code"] == "action_not_supported"
    # events and screencast are served (tests/flows/test_events.py, test_screencast.py); the
    # WebSocket control channel is not.
    assert client.get(f"/v1/computers/{session_id}/ws").status_code == 501


def test_browser_side_failures_are_200_with_status_error(client, session_id):
    missing = client.post(
        f"/v1/computers/{session_id}/step", {"action": "click", "selector": "#nope", "timeout_ms": 200}
    )
    assert missing.status_code == 200
    assert missing.json()["status"] == "error"
    assert "#nope" in missing.json()["error_message"]
    closed_port = client.post(f"/v1/computers/{session_id}/navigate", {"url": "http://127.0.0.1:9/"})
    assert closed_port.status_code == 200
    assert closed_port.json()["status"] == "error"
    assert closed_port.json()["error_message"]
    # The session is fine afterwards.
    assert client.post(f"/v1/computers/{session_id}/html", {}).json()["status"] == "success"


def test_private_targets_are_refused_unless_allowed(client, session_id, settings):
    settings.ALLOW_PRIVATE_NETWORK_TARGETS = False
    settings.BROWSER_EGRESS_ALLOW = []
    for url in (
        "http://127.0.0.1:8000/",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest",
        "http://[::1]/",
    ):
        response = client.post(f"/v1/computers/{session_id}/navigate", {"url": url})
        assert response.status_code == 400, url
        assert "private" in response.json()["detail"]


def test_actions_on_ended_or_expired_sessions_are_410(client, pages_server):
    ended = client.post("/v1/computers", {}).json()["id"]
    client.delete(f"/v1/computers/{ended}")
    response = client.post(f"/v1/computers/{ended}/click", {"x": 1, "y": 1})
    assert response.status_code == 410
    expired = client.post("/v1/computers", {}).json()["id"]
    BrowserSession.objects.filter(pk=expired).update(idle_expires_at=timezone.now() - timedelta(seconds=1))
    response = client.post(f"/v1/computers/{expired}/navigate", {"url": pages_server + "/flow.html"})
    assert response.status_code == 410
    row = BrowserSession.objects.get(pk=expired)
    assert row.status == "terminated" and row.ended_reason == "idle"
    assert not Action.objects.filter(session_id__in=[ended, expired]).exists()


def test_a_dead_browser_fails_the_action_cleanly_and_ends_the_session(client, session_id):
    os.killpg(BrowserSession.objects.get(pk=session_id).browser_pid, signal.SIGKILL)
    response = client.post(f"/v1/computers/{session_id}/html", {})
    assert response.status_code in (200, 410)
    if response.status_code == 200:
        assert response.json()["status"] == "error"
    row = wait_until(
        lambda: BrowserSession.objects.filter(pk=session_id, status="terminated").first(),
        timeout=15,
        message="the session to end as crashed",
    )
    assert row.ended_reason == "crashed"


def test_actions_run_in_the_order_accepted_whichever_worker_takes_them(client, session_id):
    client.post(f"/v1/computers/{session_id}/click", {"x": FIELD[0], "y": FIELD[1]})
    accepted = []
    for n in range(15):
        response = client.post(f"/v1/computers/{session_id}/type?wait=false", {"text": f"{n},"})
        assert response.status_code == 202, response.text
        accepted.append(response.json()["action_id"])
    last = accepted[-1]
    wait_until(
        lambda: client.get(f"/v1/actions/{last}").json()["status"] != "pending",
        timeout=30,
        message="the queue to drain",
    )
    expected = "".join(f"{n}," for n in range(15))
    assert f"typed:{expected}" in _html(client, session_id)
    rows = list(Action.objects.filter(public_id__in=accepted).order_by("id"))
    for earlier, later in pairwise(rows):
        assert earlier.finished_at <= later.started_at, "actions of one session never overlap"


def test_concurrent_requests_to_one_session_never_overlap(client, session_id):
    def hit(_):
        return client.post(
            f"/v1/computers/{session_id}/execute", {"action": {"type": "wait", "ms": 50}}
        ).json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(hit, range(16)))
    assert all(r["status"] == "success" for r in results)
    rows = list(Action.objects.filter(session_id=session_id, type="wait").order_by("started_at"))
    assert len(rows) == 16
    for earlier, later in pairwise(rows):
        assert earlier.finished_at <= later.started_at


def test_sessions_run_actions_in_parallel(make_client, pages_server):
    client = make_client(plan="pro")
    sessions = [client.post("/v1/computers", {}).json()["id"] for _ in range(2)]
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(
                lambda sid: client.post(
                    f"/v1/computers/{sid}/execute", {"action": {"type": "wait", "ms": 1500}}
                ).json(),
                sessions,
            )
        )
    assert all(r["status"] == "success" for r in results)
    assert time.monotonic() - started < 2.9, "two sessions' waits ran one after the other"


def test_async_action_is_polled_and_history_is_listed_newest_first(client, session_id):
    response = client.post(f"/v1/computers/{session_id}/html", {}, headers={"Prefer": "respond-async"})
    assert response.status_code == 202
    action_id = response.json()["action_id"]
    assert response.json()["poll_url"].endswith(f"/v1/actions/{action_id}")
    done = wait_until(
        lambda: (r := client.get(f"/v1/actions/{action_id}").json())["status"] != "pending" and r,
        timeout=20,
        message="the action to finish",
    )
    assert done["status"] == "success" and "<html" in done["result"]["html_content"]
    assert done["type"] == "html" and done["duration_ms"] is not None
    history = client.get(f"/v1/computers/{session_id}/actions?limit=1").json()
    assert history["results"][0]["action_id"] == action_id and history["has_more"] is True
    second = client.get(f"/v1/computers/{session_id}/actions?limit=1&offset=1").json()["results"][0]
    assert second["type"] == "navigate"
    assert client.get("/v1/actions/act_nope").status_code == 404


def test_every_action_resets_the_idle_timer(client, session_id):
    before = BrowserSession.objects.get(pk=session_id).idle_expires_at
    client.post(f"/v1/computers/{session_id}/execute", {"action": {"type": "wait", "ms": 1}})
    after = BrowserSession.objects.get(pk=session_id)
    assert after.idle_expires_at > before and after.status == "running"


def test_another_account_cannot_act_on_or_read_a_session(make_client, session_id, client):
    other = make_client(name="other")
    assert other.post(f"/v1/computers/{session_id}/click", {"x": 1, "y": 1}).status_code == 404
    # Not even a validation error tells that the session exists.
    assert other.post(f"/v1/computers/{session_id}/click", {"x": "left"}).status_code == 404
    assert client.post(f"/v1/computers/{session_id}/click", {"x": "left"}).status_code == 400
    assert other.get(f"/v1/computers/{session_id}/actions").status_code == 404
    action_id = client.get(f"/v1/computers/{session_id}/actions").json()["results"][0]["action_id"]
    assert other.get(f"/v1/actions/{action_id}").status_code == 404


def test_screenshot_urls_are_unguessable_and_expire(client, session_id, settings):
    url = client.post(f"/v1/computers/{session_id}/screenshot", {}).json()["result"]["screenshot_url"]
    assert requests.get(url, timeout=10).status_code == 200
    assert requests.get(url.replace(".png", "x.png"), timeout=10).status_code == 404
    settings.SCREENSHOT_URL_TTL_SECONDS = 0
    # Its signature's timestamp is in whole seconds: expired once the next second starts.
    wait_until(
        lambda: requests.get(url, timeout=10).status_code == 404, timeout=5, message="the URL to expire"
    )


def test_sdk_reports_400_for_navigate_without_url(client, session_id):
    sdk = client.sdk("/v1")
    with pytest.raises(tzafon.BadRequestError):
        sdk.computers.navigate(session_id)


def test_an_action_accepted_by_a_web_process_that_died_before_queueing_it_runs_once_later(client, session_id):
    """A web process killed between the accept's commit and its message to the workers leaves a
    charged, queued action that no task carries. Beat's reconcile finds it (queued for longer
    than ACTION_REDELIVER_AFTER_SECONDS, nothing running on its session) and delivers it: it runs
    once, charged once (the fixtures check every balance against its ledger afterwards)."""
    from billing.selectors import balance_of
    from project.redis import get_redis
    from sessions.action_queue import _accept
    from workers.action_runner import lock_key

    account = client.account
    # The navigate's drain has ended (its lock released, its last look at the queue taken): a
    # drain still under way would find the action below by itself.
    wait_until(lambda: not get_redis().exists(lock_key(session_id)), timeout=10, message="the drain to end")
    time.sleep(0.5)
    before = balance_of(account_id=account.pk)
    accepted = _accept(session_id=session_id, account=account, action={"type": "html"}, api_key=None)
    assert accepted is not None
    row, _events = accepted  # what the dead process would have sent next: never sent
    assert balance_of(account_id=account.pk) == before - row.price  # charged at the accept
    time.sleep(3)  # a reconcile runs every 2 s in the tests: too early to redeliver it yet
    assert Action.objects.get(pk=row.pk).status == "queued"
    done = wait_until(
        lambda: (a := Action.objects.get(pk=row.pk)).status not in ("queued", "running") and a,
        timeout=40,
        interval=0.5,
        message="Beat to deliver the undelivered action",
    )
    assert done.status == "succeeded" and "<html" in done.result["html_content"], (done.status, done.error)
    assert done.started_at - row.created_at >= timedelta(seconds=settings.ACTION_REDELIVER_AFTER_SECONDS - 1)
    assert balance_of(account_id=account.pk) == before - row.price  # once
    # The session goes on: the next action through the API runs after it.
    assert "flow" in _html(client, session_id).lower()
