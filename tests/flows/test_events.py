"""GET /computers/{id}/events: a session's life as server-sent events, through the ASGI server,
a real worker and Chromium."""

from __future__ import annotations

import os
import re
import socket
import time
from typing import Any

import pytest
import requests

from project.redis import get_redis
from tests.support.processes import wait_until
from tests.support.sse import SseReader


def _open(client: Any, session_id: str, *, prefix: str = "/v1", **headers: str) -> requests.Response:
    return requests.get(
        f"{client.base_url}{prefix}/computers/{session_id}/events",
        headers={"Authorization": f"Bearer {client.key}", **headers},
        stream=True,
        timeout=(10, 60),
    )


def _kinds(events: list[Any]) -> list[tuple[str, str]]:
    out = []
    for e in events:
        if e.event == "status":
            out.append(("status", e.data["status"]))
        else:
            out.append((e.event, e.data["type"]))
    return out


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_events_show_another_clients_actions_in_order_and_end_with_the_session(
    make_client: Any, pages_server: str, prefix: str
) -> None:
    driver = make_client(plan="pro")
    session_id = driver.post("/v1/computers", {}).json()["id"]
    response = _open(driver, session_id, prefix=prefix)  # a second connection: "another client"
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    watcher = SseReader(response)
    try:
        ok = driver.post(f"/v1/computers/{session_id}/navigate", {"url": f"{pages_server}/buttons.html"})
        assert ok.json()["status"] == "success", ok.text
        navigate_id = ok.json()["action_id"]
        assert (
            driver.post(f"/v1/computers/{session_id}/click", {"x": 150, "y": 150}).json()["status"]
            == "success"
        )
        # Nothing listens there: an action that ran and failed.
        bad = driver.post(f"/v1/computers/{session_id}/navigate", {"url": "http://127.0.0.1:9/"})
        assert bad.json()["status"] == "error"
        watcher.wait_for(lambda ev: sum(e.event == "action_response" for e in ev) == 3, timeout=30)

        ended = driver.delete(f"/v1/computers/{session_id}")
        assert ended.status_code == 200
        deleted_at = time.monotonic()
        assert watcher.join(timeout=10), "the stream did not end with the session"
        assert watcher.ended_at is not None and watcher.ended_at - deleted_at < 2.0
    finally:
        watcher.close()

    assert _kinds(watcher.events) == [
        ("status", "ready"),
        ("status", "running"),
        ("action_request", "navigate"),
        ("action_response", "navigate"),
        ("action_request", "click"),
        ("action_response", "click"),
        ("action_request", "navigate"),
        ("action_response", "navigate"),
        ("status", "terminated"),
    ]
    first = watcher.events[2].data
    assert first["request_id"] == navigate_id == first["action_id"]
    done = watcher.events[3].data
    assert done["status"] == "success" and done["action_status"] == "succeeded"
    assert done["duration_ms"] >= 0 and done["finished_at"] >= done["started_at"] >= done["created_at"]
    failed = watcher.events[7].data
    assert failed["status"] == "error" and failed["error_message"]
    assert watcher.events[-1].data["ended_reason"] == "user"
    ids = [e.id for e in watcher.events]
    assert all(ids) and len(set(ids)) == len(ids)


def test_last_event_id_resumes_after_that_event(make_client: Any) -> None:
    client = make_client(plan="pro")
    session_id = client.post("/v1/computers", {}).json()["id"]
    for ms in (1, 2):
        assert client.post(f"/v1/computers/{session_id}/wait", {"ms": ms}).json()["status"] == "success"
    client.delete(f"/v1/computers/{session_id}")

    # Ended: the whole kept history, then the stream ends by itself.
    everything = SseReader(_open(client, session_id))
    assert everything.join(timeout=10)
    assert _kinds(everything.events)[-1] == ("status", "terminated")
    assert len(everything.events) == 7  # ready, running, 2 x (request, response), terminated

    resumed = SseReader(_open(client, session_id, **{"Last-Event-ID": everything.events[3].id or ""}))
    assert resumed.join(timeout=10)
    assert [e.id for e in resumed.events] == [e.id for e in everything.events[4:]]

    bad = _open(client, session_id, **{"Last-Event-ID": "not-an-id"})
    assert bad.status_code == 400, bad.text


def test_another_accounts_session_is_404_and_no_key_is_401(make_client: Any) -> None:
    owner = make_client(plan="pro")
    stranger = make_client(plan="pro", name="stranger")
    session_id = owner.post("/v1/computers", {}).json()["id"]
    for prefix in ("/v1", ""):
        assert _open(stranger, session_id, prefix=prefix).status_code == 404
        assert _open(stranger, "comp_" + "0" * 24, prefix=prefix).status_code == 404
        anonymous = requests.get(f"{owner.base_url}{prefix}/computers/{session_id}/events", timeout=10)
        assert anonymous.status_code == 401


def _slots(account_id: int) -> int:
    return int(get_redis().zcard(f"bf:streams:{account_id}"))


def test_open_streams_over_the_accounts_cap_are_429_and_a_closed_one_frees_its_slot(
    make_client: Any, settings: Any
) -> None:
    settings.ACCOUNT_MAX_OPEN_STREAMS = 2
    client = make_client(plan="pro")
    other = make_client(plan="pro", name="other")
    session_id = client.post("/v1/computers", {}).json()["id"]
    other_session = other.post("/v1/computers", {}).json()["id"]
    first, second = _open(client, session_id), _open(client, session_id)
    assert first.status_code == second.status_code == 200
    refused = _open(client, session_id)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "too_many_open_streams"
    assert int(refused.headers["Retry-After"]) >= 1
    assert _open(other, other_session).status_code == 200  # another account is not affected

    first.close()
    wait_until(lambda: _slots(client.account.pk) == 1, timeout=10, message="the closed stream's slot back")
    third = _open(client, session_id)
    assert third.status_code == 200
    second.close()
    third.close()


def test_open_streams_hold_no_web_thread(make_client: Any, settings: Any) -> None:
    """More open streams than the web process has threads (WEB_THREADS): the API still answers."""
    threads = settings.WEB_THREADS
    settings.ACCOUNT_MAX_OPEN_STREAMS = threads + 10
    client = make_client(plan="pro")
    session_id = client.post("/v1/computers", {}).json()["id"]
    host, port = client.base_url.removeprefix("http://").split(":")
    request = (
        f"GET /v1/computers/{session_id}/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {client.key}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    sockets = []
    try:
        for _ in range(threads + 5):
            sock = socket.create_connection((host, int(port)), timeout=20)
            sock.sendall(request)
            assert sock.recv(64).startswith(b"HTTP/1.1 200"), "a stream was refused"
            sockets.append(sock)
        started = time.monotonic()
        answer = client.post(f"/v1/computers/{session_id}/wait", {"ms": 1})
        assert answer.status_code == 200 and answer.json()["status"] == "success", answer.text
        assert time.monotonic() - started < 10
    finally:
        for sock in sockets:
            sock.close()


def _stream_connections(pid: int) -> list[dict[str, str]]:
    """This process's stream connections on the suite's Redis database (CLIENT LIST)."""
    db = str(get_redis().connection_pool.connection_kwargs.get("db", 0))
    return [
        {k: str(v) for k, v in c.items()}
        for c in get_redis().client_list()
        if str(c.get("db")) == db and re.fullmatch(rf"bf-streams(?:-reader)?:{pid}", str(c.get("name", "")))
    ]


def _blocked_on_xread(client: dict[str, Any]) -> bool:
    return str(client.get("cmd")) == "xread" and "b" in str(client.get("flags", ""))


def test_the_streams_of_one_process_share_one_redis_reader_and_end_with_the_session(
    make_client: Any, settings: Any
) -> None:
    """Event and screencast streams of one web process (here the test server's) read Redis
    through one connection (sessions/stream_hub.py), however many are open; each still ends
    within 2 s of its session's end."""
    settings.ACCOUNT_MAX_OPEN_STREAMS = 40
    client = make_client(plan="pro")
    sessions = [client.post("/v1/computers", {}).json()["id"] for _ in range(2)]
    wait_until(
        lambda: all(
            client.get(f"/v1/computers/{s}").json()["status"] in ("ready", "running") for s in sessions
        ),
        timeout=60,
        message="the browsers to start",
    )
    host, port = client.base_url.removeprefix("http://").split(":")
    sockets = []
    try:
        for n in range(30):
            kind = "screencast" if n % 3 == 0 else "events"
            sock = socket.create_connection((host, int(port)), timeout=20)
            sock.sendall(
                (
                    f"GET /v1/computers/{sessions[n % 2]}/{kind} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Authorization: Bearer {client.key}\r\nAccept: text/event-stream\r\n"
                    # Closed when the stream ends (else it is kept alive for the next request).
                    "Connection: close\r\n\r\n"
                ).encode()
            )
            head = sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            sockets.append(sock)
        # Every stream has subscribed: the reader follows both sessions' events and frames.
        pid = os.getpid()
        wait_until(
            lambda: sum(_blocked_on_xread(c) for c in _stream_connections(pid)) == 1,
            timeout=10,
            message="one blocked XREAD",
        )
        connections = _stream_connections(pid)
        readers = [c for c in connections if c["name"].startswith("bf-streams-reader:")]
        assert len(readers) == 1, connections
        # Beside the reader, a small bounded pool for short commands, whatever the number of streams.
        assert len(connections) <= 1 + 4, connections
        # No other connection of the suite's database waits on XREAD (before: one per stream).
        db = str(get_redis().connection_pool.connection_kwargs.get("db", 0))
        blocked = [c for c in get_redis().client_list() if str(c.get("db")) == db and _blocked_on_xread(c)]
        assert len(blocked) == 1, blocked

        ended = client.delete(f"/v1/computers/{sessions[0]}")
        assert ended.status_code == 200
        deleted_at = time.monotonic()
        for n, sock in enumerate(sockets):
            if n % 2:
                continue  # the other session's streams go on
            sock.settimeout(10)
            while sock.recv(1 << 16):
                pass
            assert time.monotonic() - deleted_at < 2.0, f"stream {n} outlived its session"
        # The other session's streams are still served by the same reader.
        wait_until(
            lambda: sum(_blocked_on_xread(c) for c in _stream_connections(pid)) == 1,
            timeout=10,
            message="the reader still blocked for the other session",
        )
    finally:
        for sock in sockets:
            sock.close()
        for session_id in sessions:
            client.delete(f"/v1/computers/{session_id}")
