"""Fixtures that run the real thing: PostgreSQL, Redis, a Celery worker and Beat, Chromium.

Two tiers (CONTRIBUTING.md, "Tests"):
- the fast tier: PostgreSQL and Redis only. `plans` seeds the plans and prices, `make_api_client`
  talks HTTP to the live server, services and tasks are called as functions,
  `tests/support/rows.py` builds rows. `bin/dev test --fast` runs it.
- the stack tier (marker `stack`, set here from the fixtures a test uses): the Celery worker and
  Beat (`live_worker`, `make_client`), the egress filter, a browser, a Selenium Grid. The worker
  and Beat are separate processes on the pytest-django test database; tests that cross the
  process boundary use `transactional_db` (through `live_server` or directly), so the worker
  sees what they commit.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection

from accounts.models import Account
from accounts.plans import seed_plans
from tests.support.openapi_check import ResponseChecker
from tests.support.processes import (
    browser_processes,
    pool_args,
    start_celery,
    start_egress,
    start_worker_host,
    stop_process,
    wait_until,
)

PAGES = Path(__file__).parent / "pages"


@pytest.fixture(scope="session", autouse=True)
def _test_database_droppable(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """At the end, close what other processes and threads (worker children, the live server)
    still hold open on the test database, so pytest-django can drop it."""
    yield
    if not connection.settings_dict["NAME"].startswith("test_"):
        return  # pytest-django sets up no database when none of the selected tests needs one
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Operators' passwords hashed with MD5 in tests: the production hasher (PBKDF2, ~1 s of CPU
    per hash here) made each admin test's login cost seconds. What is tested about passwords is
    the validators, which do not depend on the hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def live_server() -> Iterator[Any]:
    """The API under ASGI, as `bin/dev web` serves it (tests/support/asgi_server.py). Same name
    as pytest-django's fixture, so that its helper still gives each test `transactional_db`."""
    from tests.support.asgi_server import AsgiLiveServer

    server = AsgiLiveServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def redis_flushed() -> None:
    """The run's Redis database starts empty: counters keyed by row ids (rate windows, lockouts)
    of an earlier run, whose database restarted its sequences, must not count against this one."""
    from project.redis import get_redis

    get_redis().flushdb()


@pytest.fixture(scope="session", autouse=True)
def _flush_tries_again_after_a_deadlock() -> Iterator[None]:
    """After a test that used `transactional_db`, pytest-django empties every table (`flush`: one
    TRUNCATE, which locks the tables one after the other). The suite's worker, Beat and webhooks
    worker keep reading meanwhile, and a read that holds one table and wants another the TRUNCATE
    already locked is a deadlock; PostgreSQL ends one of the two, and when it ends the TRUNCATE
    the test errors at teardown (seen once in CI). The readers retry on their own; so does this."""
    import psycopg
    from django.core.management.base import CommandError
    from django.core.management.commands import flush

    original = flush.Command.handle

    def deadlocked(exc: BaseException | None) -> bool:
        while exc is not None:
            if isinstance(exc, psycopg.errors.DeadlockDetected):
                return True
            exc = exc.__cause__
        return False

    def handle(self: Any, **options: Any) -> Any:
        for attempt in range(5):
            try:
                return original(self, **options)
            except CommandError as exc:
                if attempt == 4 or not deadlocked(exc):
                    raise
                time.sleep(0.2)
        return None

    flush.Command.handle = handle  # type: ignore[method-assign]
    yield
    flush.Command.handle = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def service_env(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The environment of our worker and Beat processes: the test database, the test Redis."""
    return {
        **os.environ,
        "POSTGRES_DB": connection.settings_dict["NAME"],
        "PYTHONUNBUFFERED": "1",
    }


# A test whose fixtures include one of these needs the stack: it gets the `stack` marker, which
# `bin/dev test --fast` (-m "not stack") leaves out. A module that starts browsers or services
# without them says so itself (pytestmark).
STACK_FIXTURES = frozenset({"celery_worker_process", "egress_filter", "grid_url", "browser"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("faults"):
            item.add_marker(pytest.mark.stack)
    # The fast tier first (a stable sort: each tier keeps its order). Its failures show within a
    # minute, and the worker and Beat (session fixtures, started by the first stack test) are
    # not running yet: no Beat sweep or tick touches the rows a fast test commits.
    items.sort(key=lambda item: item.get_closest_marker("stack") is not None)


@pytest.fixture(scope="session")
def egress_filter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One egress filter for the whole run (as on a worker host): every browser, the Celery
    worker's and the ones tests start themselves, goes through it. Its port is in the env
    (tests/support/test_env.py), so the worker inherits it. The worker fixture starts it; a
    module that starts browsers itself asks for it (pytestmark usefixtures)."""
    logs = tmp_path_factory.mktemp("egress")
    process = start_egress(env={**os.environ, "PYTHONUNBUFFERED": "1"}, log=logs / "egress.log")
    yield settings.BROWSER_EGRESS_PORT
    stop_process(process)


@pytest.fixture(scope="session")
def celery_worker_process(
    egress_filter: int,
    service_env: dict[str, str],
    redis_flushed: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    logs = tmp_path_factory.mktemp("celery")
    workers = start_worker_host(host=settings.WORKER_HOST, env=service_env, logs=logs)
    try:
        # Batch jobs run in their own worker, as in production, so they never hold action slots.
        jobs_worker = start_celery(
            [
                "worker",
                *pool_args("jobs"),
                "-c",
                "3",
                "-l",
                "info",
                "-n",
                "test-jobs@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=service_env,
            log=logs / "jobs-worker.log",
            ready_marker="ready.",
        )
        # Webhook deliveries have their own worker, as in production (bin/dev webhooks-worker).
        workers.append(jobs_worker)
        webhooks_worker = start_celery(
            [
                "worker",
                *pool_args("webhooks"),
                "-c",
                "2",
                "-l",
                "info",
                "-n",
                "test-webhooks@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=service_env,
            log=logs / "webhooks-worker.log",
            ready_marker="ready.",
        )
        workers.remove(jobs_worker)
    except BaseException:
        for worker in workers:  # a jobs worker that fails to start must not leave the others running
            stop_process(worker)
        raise
    try:
        beat = start_celery(
            ["beat", "-l", "info", "-s", str(logs / "beat-schedule")],
            env=service_env,
            log=logs / "beat.log",
            ready_marker="beat: Starting",
        )
    except BaseException:
        stop_process(jobs_worker)  # a Beat that fails to start must not leave the workers running
        stop_process(webhooks_worker)
        for worker in workers:
            stop_process(worker)
        raise
    yield
    stop_process(beat)
    stop_process(webhooks_worker)
    stop_process(jobs_worker)
    for worker in workers:
        stop_process(worker)
    # Nothing may outlive the sessions: every browser the suite started must be gone.
    leaked = browser_processes(str(settings.BROWSER_PROFILE_ROOT))
    assert not leaked, f"browser processes left running: {leaked}"


@pytest.fixture
def plans(db: None) -> None:
    """The plans and prices, seeded (no worker: the fast tier). Under `transactional_db` the
    flush after the test empties them again."""
    from accounts.models import Plan
    from billing.models import Price
    from billing.prices import seed_prices

    seed_plans(Plan)
    seed_prices(Price)


@pytest.fixture
def live_worker(transactional_db: None, plans: None, celery_worker_process: None) -> Iterator[None]:
    """The suite's worker host, jobs worker, Beat and egress filter, for a test whose point is
    them. At the end, what the test left running is ended before the tables are flushed."""
    yield
    # Before the flush: a worker still writing while tables are truncated could deadlock it.
    _end_all_jobs()
    _end_all_sessions()


@dataclass
class Client:
    """A logged-in HTTP client for one account."""

    base_url: str
    account: Account
    key: str
    http: requests.Session
    checker: ResponseChecker | None = None

    def sdk(self, prefix: str = "", **kwargs: Any) -> Any:
        """The public tzafon SDK on this account; its JSON answers are checked like ours."""
        import httpx
        from tzafon import Lightcone

        hooks = {"response": [self.checker.httpx_hook()]} if self.checker else {}
        kwargs.setdefault("max_retries", 0)
        http = httpx.Client(event_hooks={**hooks, **kwargs.pop("event_hooks", {})})
        return Lightcone(
            api_key=kwargs.pop("api_key", self.key),
            base_url=self.base_url + prefix,
            http_client=http,
            **kwargs,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.key}", **kwargs.pop("headers", {})}
        return self.http.request(method, self.base_url + path, headers=headers, timeout=60, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture(scope="session")
def openapi_checker(live_server: Any) -> ResponseChecker:
    """The served OpenAPI description, against which every client's JSON answers are checked."""
    document = requests.get(live_server.url + "/v1/openapi.json", timeout=60)
    document.raise_for_status()
    return ResponseChecker(document.json())


@pytest.fixture
def make_api_client(live_server: Any, plans: None, openapi_checker: ResponseChecker) -> Iterator[Any]:
    """Accounts with a key, over HTTP to the live server, without a worker (the fast tier): for
    what the web answers by itself (auth, validation, accounts, usage). Sessions it creates
    stay `starting`. Every JSON answer is checked against /v1/openapi.json."""
    from accounts.services import account_create

    def make(*, plan: str = "free", credits: int = 100_000, name: str = "test") -> Client:
        account, key = account_create(name=name, plan_name=plan, credits=credits)
        http = requests.Session()
        http.hooks["response"].append(openapi_checker.requests_hook())
        return Client(base_url=live_server.url, account=account, key=key, http=http, checker=openapi_checker)

    yield make
    _assert_balances_match_ledgers()


@pytest.fixture
def make_client(make_api_client: Any, live_worker: None) -> Any:
    """Accounts over HTTP with the whole stack behind the live server (the stack tier)."""
    return make_api_client


def _end_all_sessions() -> None:
    """End what a test left running and wait for the browsers to go, before tables are flushed."""
    from sessions.models import LIVE_STATUSES, BrowserSession, SessionStatus
    from sessions.services import session_terminate

    for session_id in BrowserSession.objects.filter(status__in=LIVE_STATUSES).values_list("pk", flat=True):
        session_terminate(session_id=session_id, reason="admin")
    wait_until(
        lambda: (
            not BrowserSession.objects.filter(
                status=SessionStatus.TERMINATED, browser_released_at__isnull=True
            ).exists()
        ),
        timeout=30,
        message="browsers of ended sessions to be released",
    )


def _end_all_jobs() -> None:
    """Cancel what a test left running and wait until its browsers are stopped."""
    from jobs.models import ACTIVE_JOB_STATUSES, Job, JobBrowser
    from jobs.services import job_cancel

    for job in Job.objects.filter(status__in=ACTIVE_JOB_STATUSES):
        if job.status != "cancelling":
            job_cancel(job=job)
    try:
        wait_until(
            lambda: (
                not Job.objects.filter(status__in=ACTIVE_JOB_STATUSES).exists()
                and not JobBrowser.objects.filter(browser_released_at__isnull=True)
                .exclude(webdriver_session_id="")
                .exists()
                and not JobBrowser.objects.filter(is_live=True).exists()
            ),
            timeout=90,
            message="jobs to end and their browsers to be stopped",
        )
    except AssertionError as exc:
        jobs = list(Job.objects.values("pk", "status", "credits_pending"))
        browsers = list(
            JobBrowser.objects.values(
                "pk", "job_id", "is_live", "webdriver_session_id", "browser_released_at"
            )
        )
        raise AssertionError(f"{exc}: jobs {jobs}, browsers {browsers}") from None


def _assert_balances_match_ledgers() -> None:
    from billing.selectors import balances_mismatched

    assert balances_mismatched() == []


@pytest.fixture
def api_client(make_api_client: Any) -> Client:
    return make_api_client(plan="pro")


@pytest.fixture
def client(make_client: Any) -> Client:
    return make_client(plan="pro")


@pytest.fixture
def free_client(make_client: Any) -> Client:
    return make_client(plan="free")


@pytest.fixture(scope="session")
def pages_server() -> Iterator[str]:
    """The pages that browsers visit, served by the tests on 127.0.0.1."""
    handler = partial(_QuietHandler, directory=str(PAGES))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def grid_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Selenium Grid 4 (the npm jar on Java 17) driving Debian's Chromium, started once."""
    from tests.support.selenium_grid import ensure_grid_jar, running_grid

    cache = Path(os.environ.get("BROWSERFLEET_CACHE_DIR", Path.home() / ".cache" / "browserfleet")) / "grid"
    jar = ensure_grid_jar(cache)
    with running_grid(jar=jar, port=free_port(), workdir=tmp_path_factory.mktemp("grid")) as url:
        yield url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
