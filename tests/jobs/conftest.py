"""A target site for batch jobs, served by the tests on 127.0.0.1, and a webhook receiver.

Routes: /p/<n> (a product page; ?ms= delays the answer), /status/<code>, /flaky/<name> (500
the first time, then a page), /limited/<name> (429 with Retry-After: 1 the first time), /hang (never
finishes loading), /noprice/<n> (no .price element), /redirect/<name>?to=URL (302 to URL),
/held/<name> (answers a product page once the test opens `site.gate(name)`), and
POST /hook/<name> (records deliveries; /hook/fail-<n>-<name> answers 500 to the first n).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.processes import wait_until


@dataclass
class Site:
    url: str
    hits: Counter[str] = field(default_factory=Counter)
    hit_times: dict[str, list[float]] = field(default_factory=dict)
    in_flight: int = 0
    most_in_flight: int = 0
    hooks: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gates: dict[str, threading.Event] = field(default_factory=dict)

    def gate(self, name: str) -> threading.Event:
        """What /held/<name> waits for before it answers (set it to let the page load)."""
        with self.lock:
            return self.gates.setdefault(name, threading.Event())

    def hooks_for(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [hook for hook in self.hooks if hook["name"] == name]


def _product(n: str) -> bytes:
    return (
        f"<!doctype html><html><head><title>Product {n}</title></head><body>"
        f"<h1>Product {n}</h1><span class='price'>${n}.00</span>"
        f"<ul><li class='tag'>t{n}a</li><li class='tag'>t{n}b</li></ul></body></html>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    site: Site
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        if path == "/favicon.ico":
            self._send(404, b"")
            return
        with self.site.lock:
            if self.command == "GET":
                self.site.hits[path] += 1
                self.site.hit_times.setdefault(path, []).append(time.monotonic())
            hits = self.site.hits[path]
        delay = int(query.get("ms", ["0"])[0])
        if delay:
            with self.site.lock:
                self.site.in_flight += 1
                self.site.most_in_flight = max(self.site.most_in_flight, self.site.in_flight)
            time.sleep(delay / 1000)  # the slow page a test asked for (?ms=)
            with self.site.lock:
                self.site.in_flight -= 1
        segments = path.strip("/").split("/")
        kind, name = segments[0], segments[-1]
        if kind == "p":
            self._send(200, _product(name))
        elif kind == "noprice":
            self._send(200, f"<html><body><h1>Bare {name}</h1></body></html>".encode())
        elif kind == "status":
            self._send(int(name), f"<html><body><h1>Error {name}</h1></body></html>".encode())
        elif kind == "flaky":
            if hits == 1:
                self._send(500, b"<html><body>try again</body></html>")
            else:
                self._send(200, _product(name))
        elif kind == "limited":
            if self.command == "HEAD" or hits == 1:
                self._send(429, b"<html><body>slow down</body></html>", {"Retry-After": "1"})
            else:
                self._send(200, _product(name))
        elif kind == "held":
            self.site.gate(name).wait(120)
            self._send(200, _product(name))
        elif kind == "redirect":
            self._send(302, b"", {"Location": query["to"][0]})
        elif kind == "hang":
            # Headers and the start of a body, then nothing: the page never finishes loading.
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body><h1>Loading forever</h1>")
            self.wfile.flush()
            self.site.stop.wait(120)
            self.close_connection = True
        else:
            self._send(404, b"<html><body>no such page</body></html>")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        segments = urlsplit(self.path).path.strip("/").split("/")
        if segments[0] != "hook":
            self._send(404, b"")
            return
        name = segments[-1]
        with self.site.lock:
            self.site.hooks.append({"name": name, "headers": dict(self.headers), "body": body})
            tries = sum(1 for hook in self.site.hooks if hook["name"] == name)
        if name.startswith("fail-") and tries <= int(name.split("-")[1]):
            self._send(500, b"no")
            return
        self._send(200, b"ok")


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    # On the port tests/support/test_env.py chose (`proxied.test` on it is an allowed name).
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["BF_TEST_SITE_PORT"])), _Handler)
    server.daemon_threads = True
    site = Site(url=f"http://127.0.0.1:{server.server_address[1]}")
    _Handler.site = site
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site
    site.stop.set()
    server.shutdown()


SCHEMA = {"fields": {"name": "h1", "price": ".price", "tags": {"selector": ".tag", "list": True}}}


def submit(client: Any, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = client.post("/v1/jobs", {"scrape": {"schema": SCHEMA}, **body}, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


def wait_job(
    client: Any,
    job_id: str,
    *,
    statuses: tuple[str, ...] = ("completed", "failed", "cancelled"),
    timeout: float = 120,
) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return wait_until(finished, timeout=timeout, interval=0.3, message=f"job {job_id} to reach {statuses}")


def results(client: Any, job_id: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 50, **params, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/v1/jobs/{job_id}/results", params=query).json()
        out += page["results"]
        cursor = page["next_cursor"]
        if not cursor:
            return out


def ledger(account_id: int) -> list[tuple[str, int]]:
    from billing.models import LedgerEntry

    return list(
        LedgerEntry.objects.filter(account_id=account_id).order_by("pk").values_list("kind", "amount")
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line]


# Database-only tests (no worker, no browser): plans and prices seeded, the API called in-process.


def _seed() -> None:
    from accounts.models import Plan
    from accounts.plans import seed_plans
    from billing.models import Price
    from billing.prices import seed_prices

    seed_plans(Plan)
    seed_prices(Price)


@pytest.fixture
def seeded(db: None) -> None:
    """In the test's own transaction, never committed: a worker that another test started sees
    none of its rows (it would admit and run its jobs) and no task is sent (on_commit)."""
    _seed()


@pytest.fixture
def seeded_committed(transactional_db: None) -> None:
    """Committed rows, for tests that need another connection or thread to see them."""
    _seed()


def api_for(plan: str, *, credits: int = 10_000_000) -> tuple[Any, Any]:
    """(an in-process API client logged in as a new account of `plan`, the account)."""
    from rest_framework.test import APIClient

    from accounts.services import account_create

    account, key = account_create(name=f"db-{plan}", plan_name=plan, credits=credits)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return api, account
