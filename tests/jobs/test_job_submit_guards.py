"""A job submit cannot hold a web thread: size and plan checks come before any parsing or lookup,
host lookups run with bounded concurrency and a deadline, and submits count in the in-flight cap.

Database only (no worker, no browser): the API is called in-process. Tenant host names are
resolved by a stand-in for `getaddrinfo` (names under `.invalid`, RFC 6761), so no test ever
asks a real DNS server about them: `never.invalid` names block until the test ends, as a host
whose DNS server never answers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.inflight import inflight_limit, inflight_slot_release, inflight_slot_take
from jobs.models import Job
from tests.jobs.conftest import api_for

_real_getaddrinfo = socket.getaddrinfo


@dataclass
class Resolver:
    lookups: list[str] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not name.endswith(".invalid"):
            return _real_getaddrinfo(host, port, *args, **kwargs)  # loopback: our own services
        with self.lock:
            self.lookups.append(name)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if name.endswith("never.invalid"):
                self.release.wait(60)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    fake = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    yield fake
    fake.release.set()


def test_a_100000_url_free_plan_submit_is_refused_before_any_lookup(seeded_committed, resolver):
    api, _ = api_for("free")
    urls = [f"http://h{n}.never.invalid/p" for n in range(100_000)]
    response = api.post("/v1/jobs", {"urls": urls}, format="json")
    assert response.status_code in (400, 413), response.content[:300]
    assert response.json()["code"] in ("job_too_large", "payload_too_large")
    assert resolver.lookups == []
    assert not Job.objects.exists()


def test_a_submit_over_the_plans_url_count_is_refused_before_any_lookup(seeded_committed, resolver):
    # Small enough to pass the size check: the count is what refuses it.
    api, _ = api_for("free")
    response = api.post("/v1/jobs", {"urls": [f"http://h{n}.a.invalid/" for n in range(101)]}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "job_too_large"
    assert response.json()["limit"] == 100
    assert resolver.lookups == []


def _post_in_thread(api: APIClient, body: dict[str, Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        out["response"] = api.post("/v1/jobs", body, format="json")
        out["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_never_resolving_hosts_are_refused_at_the_lookup_deadline(seeded_committed, resolver, settings):
    settings.JOB_SUBMIT_RESOLVE_SECONDS = 1
    settings.JOB_SUBMIT_RESOLVE_CONCURRENCY = 4
    api, _ = api_for("pro")
    thread, out = _post_in_thread(
        api, {"urls": [f"http://h{n}.never.invalid/" for n in range(50)], "ignore_invalid_urls": True}
    )
    # The lookups never answer: the request must, soon after its deadline (generous on a busy box).
    thread.join(timeout=20)
    assert not thread.is_alive(), "the submit is still waiting for DNS"
    response = out["response"]
    assert response.status_code == 400 and response.json()["code"] == "no_valid_urls"
    # At most the concurrency limit of lookups ever ran at once, and the rest never started.
    assert resolver.most_in_flight <= 4
    assert len(resolver.lookups) <= 4
    assert not Job.objects.exists()


def test_a_host_that_does_not_resolve_in_time_is_named_in_the_refusal(seeded_committed, resolver, settings):
    settings.JOB_SUBMIT_RESOLVE_SECONDS = 1
    api, _ = api_for("pro")
    thread, out = _post_in_thread(api, {"urls": ["http://slow.never.invalid/"]})
    thread.join(timeout=20)
    assert not thread.is_alive(), "the submit is still waiting for DNS"
    body = out["response"].json()
    assert out["response"].status_code == 400 and body["code"] == "invalid_url"
    assert "did not resolve" in body["detail"]


def test_job_submits_count_in_the_accounts_in_flight_cap(seeded_committed, resolver):
    api, account = api_for("free")
    limit = inflight_limit(account)
    tokens = [inflight_slot_take(account_id=account.pk, limit=limit, slot_ttl=60) for _ in range(limit)]
    try:
        assert all(token is not None for token in tokens)
        response = api.post("/v1/jobs", {"urls": ["http://x.a.invalid/"]}, format="json")
        assert response.status_code == 429, response.content[:300]
        assert response.json()["code"] == "too_many_requests_in_flight"
        assert resolver.lookups == []
    finally:
        for token in tokens:
            inflight_slot_release(account_id=account.pk, token=token or "")


def test_a_webhook_host_that_never_resolves_is_refused_at_the_deadline(seeded_committed, resolver, settings):
    settings.JOB_SUBMIT_RESOLVE_SECONDS = 1
    api, _ = api_for("pro")
    thread, out = _post_in_thread(
        api, {"urls": ["http://127.0.0.1:9/"], "webhook": {"url": "http://hook.never.invalid/h"}}
    )
    thread.join(timeout=20)
    assert not thread.is_alive(), "the submit is still waiting for the webhook host's DNS"
    assert out["response"].status_code == 400
    assert "did not resolve" in out["response"].content.decode()
