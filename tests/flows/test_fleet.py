"""The fleet: two more worker hosts on this machine, each with its own profile root and warm pool.

`host-a` and `host-b` run as `bin/dev worker` does (a prefork lifecycle worker on `lifecycle`
and `host.<name>`, a threads actions worker on `actions` and `actions.<name>`), next to the
suite's own host. host-b keeps a warm pool of each flavour (full Chromium and Chromium's headless
shell, docs/operations.md "Browser flavours"), so creates of both flavours go through pool claims,
restores, pinning and a host's death. Each test starts from full pools (the table flush between
tests forgets them, reconcile kills the orphans and the hosts refill). The last test kills host-b.
"""

from __future__ import annotations

import base64
import os
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from sessions.models import Action, BrowserSession, WarmBrowser, WorkerHost
from tests.flows.test_browser_flavours import runs
from tests.flows.test_saved_state import site  # noqa: F401  (the fixture)
from tests.support.processes import browser_processes, start_worker_host, stop_process, wait_until

# Each host's warm pools, by flavour.
POOLS = {"host-a": {"chromium": 2}, "host-b": {"chromium": 1, "headless_shell": 1}}


@pytest.fixture(scope="module")
def fleet(
    service_env: dict[str, str],
    celery_worker_process: None,
    tmp_path_factory: pytest.TempPathFactory,
    django_db_blocker: Any,
) -> Iterator[dict[str, Any]]:
    hosts: dict[str, Any] = {}
    try:
        for name, pools in POOLS.items():
            root = tmp_path_factory.mktemp(f"browsers-{name}")
            env = {
                **service_env,
                "BROWSER_PROFILE_ROOT": str(root),
                "BROWSER_POOL_SIZE": str(pools.get("chromium", 0)),
                "BROWSER_POOL_SIZE_HEADLESS_SHELL": str(pools.get("headless_shell", 0)),
            }
            logs = tmp_path_factory.mktemp(f"logs-{name}")
            hosts[name] = {
                "root": root,
                "logs": logs,
                "processes": start_worker_host(host=name, env=env, logs=logs),
            }
        yield hosts
    finally:
        for host in hosts.values():
            for process in host["processes"]:
                stop_process(process)
        for name, host in hosts.items():
            # A warm shutdown stops the pool; whatever a test left is gone too.
            wait_until(
                lambda root=host["root"]: not browser_processes(str(root)),
                timeout=30,
                message=f"the browsers of {name} to be gone",
            )
        # Not heartbeating any more: no create may be placed there.
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM browser_sessions_workerhost WHERE name = ANY(%s)", [list(POOLS)])
            cursor.execute("DELETE FROM browser_sessions_warmbrowser WHERE host = ANY(%s)", [list(POOLS)])


def _ready(host: str, flavour: str | None = None) -> list[WarmBrowser]:
    rows = WarmBrowser.objects.filter(host=host, state="ready")
    return list(rows if flavour is None else rows.filter(flavour=flavour))


def _pooled(flavour: str) -> int:
    """Pool browsers of `flavour` on all the hosts, when full."""
    return sum(pools.get(flavour, 0) for pools in POOLS.values())


def _pools_full() -> None:
    wait_until(
        lambda: all(len(_ready(h, f)) == n for h, pools in POOLS.items() for f, n in pools.items()),
        timeout=90,
        interval=0.2,
        message=f"warm pools {POOLS}",
    )


@pytest.fixture
def api(make_client: Any, fleet: dict[str, Any]) -> Any:
    client = make_client(plan="enterprise", credits=10**6)
    _pools_full()
    return client


def _create(api: Any, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/computers", body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _row(session_id: str) -> BrowserSession:
    return BrowserSession.objects.get(pk=session_id)


def _title(api: Any, session_id: str, url: str) -> str:
    body = api.post(f"/v1/computers/{session_id}/navigate", {"url": url}).json()
    assert body["status"] == "success", body
    html = api.post(f"/v1/computers/{session_id}/html", {}).json()["result"]["html_content"]
    return html.split("<title>", 1)[1].split("</title>", 1)[0]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_racing_creates_each_get_a_distinct_browser_and_the_rest_cold_start(api):
    pooled = {w.pk for h in POOLS for w in _ready(h, "chromium")}  # what a create claims by default
    with ThreadPoolExecutor(6) as pool:
        created = list(pool.map(lambda _: _create(api), range(6)))
    rows = [_row(c["id"]) for c in created]
    assert all(r.status == "ready" for r in rows)
    browsers = [Path(r.profile_dir).name for r in rows]
    assert len(set(browsers)) == 6 and len({r.webdriver_session_id for r in rows}) == 6
    warm = [b for b in browsers if b.startswith("pool_")]
    # Every pool browser ready before the race went to one session; the others started cold,
    # in their own profile directory (named for the session).
    assert pooled <= set(warm), (pooled, browsers)
    assert all(b.startswith("pool_") or b == r.pk for b, r in zip(browsers, rows, strict=True))
    assert not WarmBrowser.objects.filter(pk__in=warm).exists()  # claimed means out of the pool
    # The hosts refill their pools with new browsers.
    _pools_full()
    assert not {w.pk for h in POOLS for w in _ready(h)} & set(warm)


def test_a_used_pool_browser_never_serves_another_session(api, pages_server):
    first = _create(api)
    first_row = _row(first["id"])
    assert Path(first_row.profile_dir).name.startswith("pool_")
    assert _title(api, first["id"], pages_server + "/cookie.html?set") == "cookie=tenant=first storage=first"
    assert api.delete(f"/v1/computers/{first['id']}").status_code == 200
    wait_until(
        lambda: not browser_processes(first_row.profile_dir), timeout=15, message="the used browser gone"
    )
    _pools_full()
    # The pool now holds only browsers that never served anyone: the next sessions see nothing.
    for _ in range(_pooled("chromium")):
        session = _create(api)
        assert Path(_row(session["id"]).profile_dir).name.startswith("pool_")
        assert _row(session["id"]).profile_dir != first_row.profile_dir
        assert _title(api, session["id"], pages_server + "/cookie.html") == "cookie=none storage=none"


def test_display_is_applied_to_a_pool_browser(api):
    session = _create(api, display={"width": 800, "height": 600, "scale": 2})
    assert Path(_row(session["id"]).profile_dir).name.startswith("pool_")
    shot = api.post(f"/v1/computers/{session['id']}/screenshot", {"base64": True}).json()
    assert shot["status"] == "success", shot
    png = base64.b64decode(shot["result"]["screenshot_url"].split(",", 1)[1])
    assert _png_size(png) == (1600, 1200)


def test_a_create_claims_a_warm_browser_of_its_own_flavour(api):
    host_b = WorkerHost.objects.get(pk="host-b")
    assert (host_b.pool_size, host_b.pool_size_headless_shell) == (1, 1)  # from its heartbeat
    [shell] = _ready("host-b", "headless_shell")
    full = {w.pk for h in POOLS for w in _ready(h, "chromium")}
    first = _row(_create(api, browser="headless_shell")["id"])
    # The shell's pool browser, on its host, running the shell; no full Chromium was taken.
    assert Path(first.profile_dir).name == shell.pk and first.host == "host-b"
    assert runs(first.profile_dir) == "headless_shell"
    assert {w.pk for h in POOLS for w in _ready(h, "chromium")} == full
    second = _row(_create(api)["id"])
    assert Path(second.profile_dir).name in full and runs(second.profile_dir) == "chromium"
    assert not WarmBrowser.objects.filter(pk=shell.pk).exists()  # claimed means out of the pool
    # Both pools are refilled, each with its own flavour.
    _pools_full()
    for warm in (w for h in POOLS for w in _ready(h)):
        assert runs(warm.profile_dir) == warm.flavour, warm


def test_a_pool_browser_killed_from_outside_is_replaced(api):
    victim = _ready("host-a")[0]
    os.killpg(victim.browser_pid, signal.SIGKILL)
    wait_until(
        lambda: not WarmBrowser.objects.filter(pk=victim.pk).exists(),
        timeout=30,
        message="reconcile to drop the dead pool browser",
    )
    _pools_full()
    assert not browser_processes(victim.profile_dir)


class _Undo(Exception):
    pass


def _create_with_every_host_full(key: str) -> None:
    """Inside one transaction, rolled back: every host full (capacity 1, one pool browser each,
    none of them ready); heartbeats and refills wait on the locks until it ends. Raises _Undo
    with the create's response."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE browser_sessions_workerhost IN EXCLUSIVE MODE")
        cursor.execute("UPDATE browser_sessions_workerhost SET capacity = 1")
        cursor.execute("UPDATE browser_sessions_warmbrowser SET state = 'starting'")
        cursor.execute(
            "INSERT INTO browser_sessions_warmbrowser (id, host, state, created_at, backend, webdriver_url,"
            " webdriver_session_id, profile_dir) SELECT 'pool_full_' || name, name, 'starting', now(),"
            " '', '', '', '' FROM browser_sessions_workerhost h"
            " WHERE NOT EXISTS (SELECT 1 FROM browser_sessions_warmbrowser w WHERE w.host = h.name)"
        )
        response = APIClient().post("/v1/computers", {}, format="json", HTTP_AUTHORIZATION=f"Bearer {key}")
        raise _Undo(response)


def test_no_capacity_is_503_with_retry_after(live_worker, fleet):
    from accounts.services import account_create

    _, key = account_create(name="full", plan_name="enterprise", credits=10**6)
    _pools_full()

    with pytest.raises(_Undo) as undone:
        _create_with_every_host_full(key)
    response = undone.value.args[0]
    assert response.status_code == 503, response.content
    body = response.json()
    assert body["code"] == "no_capacity" and int(response["Retry-After"]) >= 1
    assert not BrowserSession.objects.filter(account__name="full").exists()


def _actions_worker(fleet: dict[str, Any], host: str) -> subprocess.Popen[bytes]:
    return fleet[host]["processes"][1]


def test_sessions_are_pinned_to_their_host_and_their_actions_run_there(api, fleet, pages_server):
    with ThreadPoolExecutor(3) as pool:
        created = list(pool.map(lambda _: _create(api), range(3)))
    by_host = {_row(c["id"]).host: c["id"] for c in created}
    assert {"host-a", "host-b"} <= set(by_host), by_host
    for host in ("host-a", "host-b"):
        row = _row(by_host[host])
        assert row.profile_dir.startswith(str(fleet[host]["root"]))  # the browser runs there
        assert runs(row.profile_dir) == "chromium"  # ... and is the default flavour
    # host-a's actions worker is paused: host-b's session acts, host-a's action waits for it
    # (no other worker takes it, though the suite's own worker consumes `actions`).
    paused = _actions_worker(fleet, "host-a")
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        waiting = api.post(
            f"/v1/computers/{by_host['host-a']}/navigate?wait=false", {"url": pages_server + "/flow.html"}
        )
        assert waiting.status_code == 202, waiting.text
        done = api.post(f"/v1/computers/{by_host['host-b']}/navigate", {"url": pages_server + "/flow.html"})
        assert done.json()["status"] == "success", done.text
        # Proves a negative: no other host's worker takes it. host-b just ran an action end to end
        # in less than this, and the idle workers poll their queues continuously, so a message
        # routed anywhere else would be running within 1 s.
        time.sleep(1)
        assert Action.objects.get(public_id=waiting.json()["action_id"]).status == "queued"
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    wait_until(
        lambda: Action.objects.get(public_id=waiting.json()["action_id"]).status == "succeeded",
        timeout=30,
        message="host-a's action to run once its worker is back",
    )


def _page_when(api: Any, session_id: str, url: str, marker: str) -> str:
    body = api.post(f"/v1/computers/{session_id}/navigate", {"url": url}).json()
    assert body["status"] == "success", body

    def html() -> str | None:
        result = api.post(f"/v1/computers/{session_id}/html", {}).json()["result"]
        return str(result["html_content"]) if marker in result["html_content"] else None

    return str(wait_until(html, timeout=20, message=marker))


def test_a_state_saved_on_one_host_restores_on_pool_browsers_of_every_host(api, site):  # noqa: F811
    base, token = site
    first = _create(api, persistent=True)["id"]
    _page_when(api, first, base + "/login", "stored")
    saved_on = _row(first).host
    api.delete(f"/v1/computers/{first}")
    _pools_full()
    flavours = ["chromium"] * 3 + ["headless_shell"]
    with ThreadPoolExecutor(4) as pool:
        created = list(pool.map(lambda f: _create(api, environment_id=first, browser=f), flavours))
    rows = [_row(c["id"]) for c in created]
    by_host = {r.host: r for r in rows if r.browser == "chromium"}
    assert {"host-a", "host-b"} <= set(by_host), by_host
    assert set(by_host) - {saved_on}, "restored on another host than the one that saved it"
    # Each host, and both flavours, each on a claimed warm browser.
    for row in [by_host["host-a"], by_host["host-b"], rows[-1]]:
        assert "/pool_" in row.profile_dir, row.profile_dir
        assert runs(row.profile_dir) == row.browser
        page = _page_when(api, row.pk, base + "/whoami", "read ")
        assert f"sid=sid-{token}" in page and f"ls=ls-{token}" in page, (row.host, row.browser, page)
        assert f"idb=idb-{token}@true" in page, (row.host, row.browser, page)


def test_a_host_that_stops_heartbeating_has_its_sessions_ended_crashed(api, fleet):
    for _ in range(6):  # host-b's pool browser is among the oldest three; then cold starts spread
        session = _create(api, record=True)
        if _row(session["id"]).host == "host-b":
            break
    assert _row(session["id"]).host == "host-b"
    # Its recording is cast by host-b's lifecycle worker, which dies with the machine below.
    wait_until(
        lambda: api.get(f"/v1/computers/{session['id']}/recording").json()["frames"] >= 1,
        timeout=30,
        message="a recorded frame on host-b",
    )
    # The machine goes away: its workers and its browsers.
    for process in fleet["host-b"]["processes"]:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    for pid, _ in browser_processes(str(fleet["host-b"]["root"])):
        os.kill(pid, signal.SIGKILL)
    # Ended, then released: two statements, so wait for both (a read between them sees the
    # first only).
    wait_until(
        lambda: _row(session["id"]).browser_released_at is not None,
        timeout=40,
        interval=0.5,
        message="the dead host's session to end and its browser to be released",
    )
    row = _row(session["id"])
    assert row.ended_reason == "crashed" and row.browser_released_at is not None
    assert not WorkerHost.objects.filter(pk="host-b").exists()
    assert not WarmBrowser.objects.filter(host="host-b").exists()
    # The recording does not wait for its dead recorder: it settles with what was written.
    recording = wait_until(
        lambda: (
            (r := api.get(f"/v1/computers/{session['id']}/recording").json())["status"] in ("ready", "failed")
            and r
        ),
        timeout=30,
        interval=0.5,
        message="the dead host's session's recording to settle",
    )
    assert recording["status"] == "ready" and recording["frames"] >= 1, recording
    # New sessions go to the hosts that are left.
    assert _row(_create(api)["id"]).host != "host-b"
