"""Faults on a whole service of the test's own: its own Redis, its own PostgreSQL cluster, and
its own web, worker and Beat processes (the commands `bin/dev serve` runs). Stopping and
restarting those disturbs nothing else on the machine.

Each test ends with the money check (every balance equals its ledger) and the stuck check (no
action queued or running without a live lease, no session starting for long).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.harness import Stack, running_stack
from tests.support.private_services import PrivatePostgres, PrivateRedis
from tests.support.processes import browser_processes, wait_until

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    cluster.init()
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="module")
def stack(private_redis: PrivateRedis, private_postgres: PrivatePostgres) -> Iterator[Stack]:
    overrides = {
        "POSTGRES_PORT": str(private_postgres.port),
        # Actions in flight are noticed quickly when their worker is gone (the lease).
        "ACTION_LEASE_SECONDS": "10",
        "SESSION_SWEEP_INTERVAL_SECONDS": "2",
        "RECONCILE_INTERVAL_SECONDS": "3",
        # Short enough to reach in a test, long enough for every other test here.
        "ACTION_BATCH_MAX_SECONDS": "6",
        "ACTION_DRAIN_TIME_LIMIT_SECONDS": "20",
    }
    with running_stack(
        name="faults", env_overrides=overrides, redis_url=private_redis.url, supervised=True
    ) as running:
        yield running
    assert not running.leaked, f"browser processes outlived the stack: {running.leaked}"


class Api:
    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> requests.Response:
        return self.http.request(method, self.base_url + path, json=body, timeout=timeout)


@pytest.fixture
def api(stack: Stack) -> Iterator[Api]:
    client = Api(stack.base_url, stack.make_account(plan="enterprise", credits=10**6))
    yield client
    _end_live_sessions(client)
    _assert_settled(stack)


def _end_live_sessions(api: Api) -> None:
    """The stack lives for the module: a test that failed half way must not leave its sessions
    holding the host's browsers for the tests after it (they would answer no_capacity)."""
    live = api.call("GET", "/v1/computers")
    assert live.status_code == 200, live.text
    for session in live.json():
        ended = api.call("DELETE", f"/v1/computers/{session['id']}")
        assert ended.status_code in (200, 404, 410), ended.text


def _assert_settled(stack: Stack) -> None:
    mismatched = stack.db_query(
        "SELECT b.account_id, b.credits, coalesce(sum(l.amount), 0) FROM billing_balance b"
        " LEFT JOIN billing_ledgerentry l ON l.account_id = b.account_id"
        " GROUP BY b.account_id, b.credits HAVING b.credits <> coalesce(sum(l.amount), 0)"
    )
    assert mismatched == [], f"balances that differ from their ledgers: {mismatched}"
    # Settles within the lease: nothing stays queued or running for good.
    wait_until(
        lambda: (
            not stack.db_query(
                "SELECT id FROM browser_sessions_action WHERE status IN ('queued', 'running')"
                " AND created_at < now() - interval '60 seconds'"
            )
        ),
        timeout=30,
        message="no action stuck in queued/running",
    )


def _sdk_would_retry(response: requests.Response) -> bool:
    """tzafon's client (`_base_client.py` `_should_retry`): x-should-retry decides when present;
    otherwise 408, 409, 429 and every 5xx."""
    header = response.headers.get("x-should-retry")
    if header in ("true", "false"):
        return header == "true"
    return response.status_code in (408, 409, 429) or response.status_code >= 500


def _create(api: Api) -> str:
    """A create as the SDK sends it: what the SDK retries is retried (its default 2 retries) after
    the Retry-After it was given. Whether a create right after a PostgreSQL restart needs no retry
    is a test of its own (test_creates_right_after_a_postgres_restart_succeed_the_first_time)."""
    response = _create_as_sdk(api)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _create_as_sdk(api: Api) -> requests.Response:
    for _ in range(3):
        response = api.call("POST", "/v1/computers", {})
        if not _sdk_would_retry(response):
            break
        time.sleep(float(response.headers.get("Retry-After", "1")))  # as the SDK: not a wait on us
    return response


def _action(api: Api, session_id: str, body: dict[str, Any], *, wait: bool = True) -> requests.Response:
    suffix = "" if wait else "?wait=false"
    return api.call("POST", f"/v1/computers/{session_id}/execute{suffix}", {"action": body})


def _worker_pids(stack: Stack) -> list[int]:
    """The Celery worker's main process first, then its pool children (this stack's only)."""
    pids = [pid for pid, cmd in browser_processes(f"bench-{stack.name}@") if "celery" in cmd]
    return sorted(pids, key=lambda pid: _parent(pid) in pids)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, IndexError, ValueError):
        return 0


def test_redis_outage_answers_503_with_retry_after_then_recovers(
    stack: Stack, api: Api, private_redis: PrivateRedis
) -> None:
    session_id = _create(api)
    assert _action(api, session_id, {"type": "wait", "ms": 10}).json()["status"] == "success"

    private_redis.stop()
    try:
        tried = {
            "create": lambda: api.call("POST", "/v1/computers", {}),
            "retrieve": lambda: api.call("GET", f"/v1/computers/{session_id}"),
            "list": lambda: api.call("GET", "/v1/computers"),
            "action": lambda: _action(api, session_id, {"type": "wait", "ms": 10}),
            "keepalive": lambda: api.call("POST", f"/v1/computers/{session_id}/keepalive", {}),
            "delete": lambda: api.call("DELETE", f"/v1/computers/{session_id}"),
            "account": lambda: api.call("GET", "/v1/account"),
        }
        answers = {name: call() for name, call in tried.items()}
    finally:
        private_redis.start()
    for name, response in answers.items():
        assert response.status_code == 503, (name, response.status_code, response.text[:300])
        assert response.json()["code"] == "service_unavailable", (name, response.text[:300])
        assert int(response.headers["Retry-After"]) >= 1, name

    # Full service again within 5 s of Redis being back.
    started = time.monotonic()
    wait_until(
        lambda: _action(api, session_id, {"type": "wait", "ms": 10}).status_code == 200,
        timeout=5,
        interval=0.2,
        message="an action to succeed after Redis came back",
    )
    assert time.monotonic() - started <= 5
    created = _create(api)
    assert api.call("DELETE", f"/v1/computers/{created}").status_code == 200


def test_postgres_restart_gives_no_500(stack: Stack, api: Api, private_postgres: PrivatePostgres) -> None:
    session_id = _create(api)
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    stop = threading.Event()

    def traffic(kind: str) -> None:
        while not stop.is_set():
            try:
                if kind == "read":
                    response = api.call("GET", f"/v1/computers/{session_id}", timeout=30)
                else:
                    response = _action(api, session_id, {"type": "wait", "ms": 5})
            except requests.RequestException as exc:
                errors.append(repr(exc))
                continue
            statuses[response.status_code] += 1
            if response.status_code >= 500 and response.status_code != 503:
                errors.append(f"{kind}: {response.status_code} {response.text[:200]}")
            time.sleep(0.05)  # pacing: steady traffic, not a flood of the web's threads

    def answered(status: int, at_least: int) -> bool:
        return statuses[status] >= at_least

    threads = [threading.Thread(target=traffic, args=(kind,)) for kind in ("read", "read", "action")]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: answered(200, 10), timeout=30, message="traffic to flow before the restart")
        private_postgres.restart()
        # Traffic through the restart until it is answered again: 10 more 200s after it.
        served = statuses[200]
        wait_until(
            lambda: answered(200, served + 10), timeout=60, message="traffic to flow after the restart"
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == [], (errors[:5], statuses)
    assert statuses[200] > 10, statuses
    # Once the database is back, everything answers.
    assert _action(api, session_id, {"type": "wait", "ms": 5}).json()["status"] == "success"


def _create_once(api: Api) -> requests.Response:
    """One create, no retry: what a client sees the first time."""
    return api.call("POST", "/v1/computers", {})


def test_creates_right_after_a_postgres_restart_succeed_the_first_time(
    stack: Stack, api: Api, private_postgres: PrivatePostgres
) -> None:
    # Before the restart, every process holds connections: the web's pools, the actions
    # worker's pool, and each of the lifecycle worker's prefork children its own (4 creates at
    # once reach several children; Beat's bookkeeping and pool refills reach the rest).
    # (As the SDK creates: a start that a busy machine cannot fit in its wait is not this test's
    # point; after the restart, it is.)
    before = _creates_at_once(api, 4, create=_create_as_sdk)
    assert [r.status_code for r in before] == [201] * 4, ([r.text[:200] for r in before], _worker_log(stack))
    private_postgres.restart()
    # Each of these meets connections opened before the restart. They must neither fail nor
    # outlive their create: a 201 the first time, every one.
    after = _creates_at_once(api, 4) + [_create_once(api) for _ in range(4)]
    statuses = [(r.status_code, r.json().get("code")) for r in after]
    if statuses != [(201, None)] * len(after):
        pytest.fail(f"{statuses}\n--- worker log\n{_worker_log(stack)}\n--- web log\n{_web_log(stack)}")
    for response in before + after:
        assert api.call("DELETE", f"/v1/computers/{response.json()['id']}").status_code == 200
    assert not stack.db_query("SELECT id FROM browser_sessions_browsersession WHERE status = 'starting'"), (
        "a session stuck starting"
    )


def _worker_log(stack: Stack) -> str:
    return stack.log_path("worker").read_text(errors="replace")[-6000:]


def _web_log(stack: Stack) -> str:
    return stack.log_path("web").read_text(errors="replace")[-6000:]


def _creates_at_once(
    api: Api, count: int, create: Callable[[Api], requests.Response] = _create_once
) -> list[requests.Response]:
    answers: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(create(api))) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return answers


def test_worker_survives_a_redis_restart_with_unacknowledged_messages(
    stack: Stack, api: Api, private_redis: PrivateRedis
) -> None:
    session_id = _create(api)
    running = _action(api, session_id, {"type": "wait", "ms": 4000}, wait=False)
    assert running.status_code == 202, running.text
    action_id = running.json()["action_id"]
    _wait_running(stack, action_id)  # the worker holds the task, unacknowledged (acks late)
    workers_before = _worker_pids(stack)
    private_redis.stop()
    time.sleep(4)  # the outage itself: long enough for the worker to see its broker gone and retry
    private_redis.start()

    # The same worker is still there and still consuming.
    assert workers_before and all(_alive(pid) for pid in workers_before[:1]), workers_before
    wait_until(
        lambda: api.call("GET", f"/v1/actions/{action_id}").json().get("status") != "pending",
        timeout=45,
        message="the action in flight during the outage to settle",
    )
    response = wait_until(
        lambda: (r := _action(api, session_id, {"type": "wait", "ms": 5})).status_code == 200 and r,
        timeout=20,
        interval=0.5,
        message="a new action to run after Redis came back",
    )
    assert response.json()["status"] == "success", response.text
    log = stack.log_path("worker").read_text(errors="replace")
    assert "Unrecoverable error" not in log, log[-3000:]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_that_exits_is_started_again(stack: Stack, api: Api) -> None:
    session_id = _create(api)
    main = _worker_pids(stack)[0]
    os.kill(main, signal.SIGKILL)  # the worker's main process: no warm shutdown, nothing cleaned up
    wait_until(lambda: not _alive(main), timeout=10, message="the worker to be gone")
    wait_until(
        lambda: (pids := _worker_pids(stack)) and pids[0] != main,
        timeout=30,
        message="bin/dev supervise to start a new worker",
    )
    response = wait_until(
        lambda: (r := _action(api, session_id, {"type": "wait", "ms": 5})).status_code == 200 and r,
        timeout=60,
        interval=1,
        message="an action to run on the new worker",
    )
    assert response.json()["status"] == "success", response.text


def _wait_running(stack: Stack, action_id: str) -> None:
    wait_until(
        lambda: (
            stack.db_query("SELECT status FROM browser_sessions_action WHERE public_id = %s", [action_id])
            == [("running",)]
        ),
        timeout=20,
        message="the action to start",
    )


def _refunds_of(stack: Stack, action_id: str) -> int:
    return int(
        stack.db_query(
            "SELECT count(*) FROM billing_ledgerentry l JOIN browser_sessions_action a ON a.id = l.action_id"
            " WHERE a.public_id = %s AND l.kind = 'refund'",
            [action_id],
        )[0][0]
    )


def test_an_action_whose_worker_is_killed_settles_within_30_s_refunded_once(stack: Stack, api: Api) -> None:
    session_id = _create(api)
    accepted = _action(api, session_id, {"type": "wait", "ms": 8000}, wait=False)
    assert accepted.status_code == 202, accepted.text
    action_id = accepted.json()["action_id"]
    _wait_running(stack, action_id)
    killed_at = time.monotonic()
    pids = _worker_pids(stack)
    for pid in pids:  # the worker and its pool: no warm shutdown, no acknowledgement, no cleanup
        os.kill(pid, signal.SIGKILL)

    settled = wait_until(
        lambda: (body := api.call("GET", f"/v1/actions/{action_id}").json())["status"] != "pending" and body,
        timeout=30,
        interval=0.5,
        message="the lost action to settle",
    )
    assert time.monotonic() - killed_at <= 30
    assert settled["status"] == "error", settled
    assert "lost" in settled["error_message"], settled
    assert _refunds_of(stack, action_id) == 1
    # The browser survived its worker: the session is still usable once a worker is back.
    response = wait_until(
        lambda: (r := _action(api, session_id, {"type": "wait", "ms": 5})).status_code == 200 and r,
        timeout=60,
        interval=1,
        message="an action to run on the restarted worker",
    )
    assert response.json()["status"] == "success", response.text
    assert api.call("GET", f"/v1/computers/{session_id}").json()["status"] != "terminated"
    # Proves a negative: no second refund. The settle that refunded it runs on Beat's sweep
    # (SESSION_SWEEP_INTERVAL_SECONDS=2 here), so 2.5 s holds at least one more sweep that would
    # refund it again.
    time.sleep(2.5)
    assert _refunds_of(stack, action_id) == 1  # and never again


def test_an_action_whose_browser_is_killed_errors_and_the_session_ends_crashed(
    stack: Stack, api: Api
) -> None:
    session_id = _create(api)
    # A step that keeps asking the browser for an element that never comes.
    step = {"type": "step", "action": "click", "selector": "#never-there", "timeout_ms": 8000}
    accepted = _action(api, session_id, step, wait=False)
    action_id = accepted.json()["action_id"]
    _wait_running(stack, action_id)
    browsers = browser_processes(f"{stack.profile_root}/{session_id}")
    assert browsers
    for pid, _ in browsers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    settled = wait_until(
        lambda: (body := api.call("GET", f"/v1/actions/{action_id}").json())["status"] != "pending" and body,
        timeout=30,
        interval=0.5,
        message="the action to settle",
    )
    assert settled["status"] == "error", settled
    session = wait_until(
        lambda: (
            (body := api.call("GET", f"/v1/computers/{session_id}").json())["status"] == "terminated" and body
        ),
        timeout=30,
        message="the session to end",
    )
    assert session["ended_reason"] == "crashed", session
    wait_until(
        lambda: not browser_processes(f"{stack.profile_root}/{session_id}"),
        timeout=30,
        message="no process of the crashed session left",
    )


def _waits(*ms: int) -> list[dict[str, Any]]:
    return [{"type": "wait", "ms": each} for each in ms]


def _batch(api: Api, session_id: str, steps: list[dict[str, Any]]) -> str:
    accepted = api.call("POST", f"/v1/computers/{session_id}/batch?wait=false", {"actions": steps})
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["action_id"])


def _refunded(stack: Stack, action_id: str) -> int:
    return int(
        stack.db_query(
            "SELECT coalesce(sum(l.amount), 0) FROM billing_ledgerentry l"
            " JOIN browser_sessions_action a ON a.id = l.action_id"
            " WHERE a.public_id = %s AND l.kind = 'refund'",
            [action_id],
        )[0][0]
    )


def _step_prices(stack: Stack, action_id: str) -> list[int]:
    prices = stack.db_query(
        "SELECT step_prices FROM browser_sessions_action WHERE public_id = %s", [action_id]
    )
    return [int(p) for p in prices[0][0]]


def _settled(api: Api, action_id: str, timeout: float = 40) -> dict[str, Any]:
    return dict(
        wait_until(
            lambda: (
                (body := api.call("GET", f"/v1/actions/{action_id}").json())["status"] != "pending" and body
            ),
            timeout=timeout,
            interval=0.5,
            message="the batch to settle",
        )
    )


def test_a_batch_whose_worker_is_lost_refunds_only_the_steps_that_did_not_finish(
    stack: Stack, api: Api
) -> None:
    session_id = _create(api)
    action_id = _batch(api, session_id, _waits(10, 10, 8000, 10))
    # The first two steps are recorded as they finish, while the third runs.
    wait_until(
        lambda: (
            stack.db_query(
                "SELECT jsonb_array_length(result->'steps') FROM browser_sessions_action"
                " WHERE public_id = %s AND status = 'running'",
                [action_id],
            )
            == [(2,)]
        ),
        timeout=20,
        message="two steps recorded",
    )
    for pid in _worker_pids(stack):
        os.kill(pid, signal.SIGKILL)

    settled = _settled(api, action_id)
    assert settled["status"] == "error" and "lost" in settled["error_message"], settled
    prices = _step_prices(stack, action_id)
    assert _refunded(stack, action_id) == prices[2] + prices[3]
    steps = stack.db_query(
        "SELECT result->'steps' FROM browser_sessions_action WHERE public_id = %s", [action_id]
    )
    assert [step["status"] for step in steps[0][0]] == ["succeeded", "succeeded"]
    # The worker comes back (supervised) and the session goes on.
    wait_until(
        lambda: _action(api, session_id, {"type": "wait", "ms": 5}).status_code == 200,
        timeout=60,
        interval=1,
        message="an action to run on the restarted worker",
    )


def test_a_drain_past_its_time_limit_charges_what_ran_and_hands_the_queue_on(stack: Stack, api: Api) -> None:
    session_id = _create(api)
    # ACTION_DRAIN_TIME_LIMIT_SECONDS=20 and ACTION_BATCH_MAX_SECONDS=6 here. The actions worker
    # runs threads, where Celery's soft time limit never fires: the third step (20 s) runs to its
    # end, the budget keeps the fourth from starting, and the drain, now past its own limit,
    # hands the action queued behind to a new task.
    action_id = _batch(api, session_id, _waits(10, 5000, 20000, 10))
    behind = _action(api, session_id, {"type": "wait", "ms": 5}, wait=False)
    assert behind.status_code == 202, behind.text

    settled = _settled(api, action_id)
    assert settled["status"] == "error", settled
    assert "steps 3 to 3 did not run" in settled["error_message"], settled
    prices = _step_prices(stack, action_id)
    assert _refunded(stack, action_id) == prices[3]
    # The action queued behind it runs in a new drain.
    assert _settled(api, behind.json()["action_id"])["status"] == "success"
    log = stack.log_path("worker").read_text(errors="replace")
    assert "drain time limit reached" in log


def test_a_batch_starts_no_step_past_its_time_budget(stack: Stack, api: Api) -> None:
    session_id = _create(api)
    # ACTION_BATCH_MAX_SECONDS=6 here: the fourth step would start at about 8 s.
    action_id = _batch(api, session_id, _waits(10, 4000, 4000, 10))
    settled = _settled(api, action_id)
    assert settled["status"] == "error" and "longer than 6 s" in settled["error_message"], settled
    prices = _step_prices(stack, action_id)
    assert _refunded(stack, action_id) == prices[3]
