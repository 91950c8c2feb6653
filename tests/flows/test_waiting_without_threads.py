"""A request that waits for its result (an action, a create) holds no web thread while it waits:
it is accepted on a web thread, then waits on the event loop (project/awaiting.py). More requests
wait than there are web threads, and the API still answers; a client that goes away mid-wait
leaves nothing held, and its action settles anyway."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings as django_settings

from accounts.models import Plan
from project.redis import get_redis
from project.web_threads import web_threads_busy
from sessions.models import Action, ActionStatus
from tests.support.processes import wait_until


class _Gate:
    """A page whose answer waits until the test opens the gate: an action that navigates to it
    runs (and the session's later actions queue behind it) until the test opens it, or until the
    browser's page-load timeout (25 s: the tests check the action still runs when they rely on it)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.asked = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate.asked.set()
                gate.open.wait(120)
                body = b"<html><head><title>gate</title></head><body>open</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/slow"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.open.set()
        self._server.shutdown()


@pytest.fixture
def gate() -> Iterator[_Gate]:
    gate = _Gate()
    yield gate
    gate.close()


def _held(account_id: int) -> int:
    return int(get_redis().zcard(f"bf:inflight:{account_id}"))


def _blocked_pops() -> int:
    """Connections of our Redis database blocked in BLPOP (a waiting completion)."""
    db = get_redis().connection_pool.connection_kwargs.get("db", 0)
    return sum(
        1
        for c in get_redis().client_list()
        if c.get("cmd") == "blpop" and "b" in c.get("flags", "") and int(c.get("db", -1)) == db
    )


def test_more_requests_wait_than_there_are_web_threads(make_client: Any, gate: _Gate) -> None:
    threads = django_settings.WEB_THREADS
    waiting = threads + 2
    Plan.objects.filter(name="enterprise").update(max_waiting_requests=waiting + 5)
    client = make_client(plan="enterprise")
    session_id = client.post("/v1/computers", {}).json()["id"]

    answers: dict[int, tuple[int, dict[str, Any]]] = {}
    navigated: list[requests.Response] = []

    def navigate() -> None:
        navigated.append(client.post(f"/v1/computers/{session_id}/navigate", {"url": gate.url}))

    def wait_action(ms: int) -> None:
        # One connection per request: the shared session's pool would queue them.
        response = requests.post(
            f"{client.base_url}/v1/computers/{session_id}/wait",
            json={"ms": ms},
            headers={"Authorization": f"Bearer {client.key}"},
            timeout=90,
        )
        answers[ms] = (response.status_code, response.json())

    first = threading.Thread(target=navigate)
    first.start()
    assert gate.asked.wait(60), "the browser never asked for the gated page"
    others = [threading.Thread(target=wait_action, args=(ms,)) for ms in range(1, waiting + 1)]
    try:
        for thread in others:
            thread.start()
        # Every one of them is accepted and waiting: more than the web process has threads.
        wait_until(
            lambda: _held(client.account.pk) == waiting + 1,
            timeout=60,
            message=f"{waiting + 1} requests waiting",
        )
        wait_until(lambda: web_threads_busy() == 0, timeout=30, message="no web thread busy")
        # The API still answers while they all wait.
        assert client.get(f"/v1/computers/{session_id}").json()["status"] == "running"
        assert client.get("/v1/computers").status_code == 200
        assert not answers and not navigated  # none of the waiting ones could have answered
    finally:
        gate.open.set()
        first.join(timeout=90)
        for thread in others:
            thread.join(timeout=90)

    assert navigated[0].status_code == 200 and navigated[0].json()["status"] == "success", navigated[0].text
    assert sorted(answers) == list(range(1, waiting + 1))
    for ms, (code, body) in answers.items():
        assert code == 200 and body["status"] == "success", body
        assert body["action_status"] == ActionStatus.SUCCEEDED
        # Each answer is its own action's.
        assert Action.objects.get(public_id=body["action_id"]).params["ms"] == ms
    assert _held(client.account.pk) == 0


def test_a_client_that_leaves_mid_wait_holds_nothing_and_its_action_settles(
    make_client: Any, gate: _Gate
) -> None:
    client = make_client(plan="pro")
    session_id = client.post("/v1/computers", {}).json()["id"]
    # Queued without waiting: it holds the session's browser until the gate opens.
    assert (
        client.post(f"/v1/computers/{session_id}/navigate?wait=false", {"url": gate.url}).status_code == 202
    )
    assert gate.asked.wait(60), "the browser never asked for the gated page"
    pops_before = _blocked_pops()

    url = urlsplit(client.base_url)
    body = json.dumps({"ms": 1}).encode()
    request = (
        f"POST /v1/computers/{session_id}/wait HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
        f"Authorization: Bearer {client.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sock = socket.create_connection((url.hostname, url.port))
    try:
        sock.sendall(request)
        wait_until(lambda: _held(client.account.pk) == 1, timeout=30, message="the request waiting")
        assert _blocked_pops() == pops_before + 1  # it waits on Redis...
        wait_until(lambda: web_threads_busy() == 0, timeout=30, message="no web thread busy")
    finally:
        sock.close()

    # Gone with the client: its slot, its Redis wait; no thread ever held.
    wait_until(lambda: _held(client.account.pk) == 0, timeout=30, message="the slot given back")
    wait_until(lambda: _blocked_pops() == pops_before, timeout=30, message="the Redis wait ended")
    assert web_threads_busy() == 0
    # All of that while the action it waited for could not have finished (the page still loads).
    navigate = Action.objects.get(session_id=session_id, type="navigate")
    assert navigate.status == ActionStatus.RUNNING

    gate.open.set()
    waited = wait_until(
        lambda: Action.objects.filter(session_id=session_id, type="wait", finished_at__isnull=False).first(),
        timeout=60,
        message="the action settled",
    )
    assert waited.status == ActionStatus.SUCCEEDED
    navigate.refresh_from_db()
    assert navigate.status == ActionStatus.SUCCEEDED, navigate.error
    polled = client.get(f"/v1/actions/{waited.public_id}").json()
    assert polled["status"] == "success" and polled["action_status"] == ActionStatus.SUCCEEDED
    # And the next request is served as usual.
    assert client.post(f"/v1/computers/{session_id}/wait", {"ms": 1}).json()["status"] == "success"
