"""/healthz and /readyz: unauthenticated, outside the API's lockout, and honest about Redis."""

from __future__ import annotations

from io import StringIO

import pytest
import redis
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.lockout import lockout_record_failure
from project.heartbeat import heartbeats_read
from tests.support.processes import start_celery, stop_process, wait_until


@pytest.fixture
def http():
    return Client()


def test_healthz_answers_even_to_a_locked_out_address(db, http, settings):
    settings.AUTH_LOCKOUT_MAX_FAILURES = 2
    ip = "127.0.0.77"
    for _ in range(2):
        lockout_record_failure(ip)
    # A wrong key from a locked address is refused (a missing one, or a valid one, is not).
    assert http.get("/v1/computers", REMOTE_ADDR=ip, HTTP_AUTHORIZATION="Bearer bf_wrong").status_code == 429
    response = http.get("/healthz", REMOTE_ADDR=ip)
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert http.get("/readyz", REMOTE_ADDR=ip).status_code in (200, 503)  # never 401/429


def test_probes_answer_whatever_the_host_header(db, http, settings):
    """Kubernetes and Prometheus send the pod's address as Host; it is not in ALLOWED_HOSTS."""
    settings.METRICS_TOKEN = "t"
    assert http.get("/v1/computers", HTTP_HOST="10.1.2.3:8000").status_code == 400
    assert http.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert http.get("/readyz", HTTP_HOST="10.1.2.3:8000").status_code in (200, 503)
    assert http.get("/metrics", HTTP_HOST="10.1.2.3:8000", HTTP_AUTHORIZATION="Bearer t").status_code == 200
    assert http.get("/metrics", HTTP_HOST="10.1.2.3:8000").status_code == 401
    refused = http.post("/healthz")
    assert refused.status_code == 405 and refused.json()["code"] == "method_not_allowed"


def test_readyz_is_ready_with_the_suite_worker(transactional_db, celery_worker_process, http, settings):
    settings.METRICS_TOKEN = "t"  # the details are for a metrics reader (tests/ops/test_readyz_public.py)
    response = wait_until(
        lambda: (r := http.get("/readyz", HTTP_AUTHORIZATION="Bearer t")).status_code == 200 and r,
        timeout=30,
        message="readyz 200",
    )
    body = response.json()
    assert body["failed"] == []
    # The suite's worker host runs a lifecycle and an actions worker (tests/conftest.py).
    assert any(name.startswith(("lifecycle-", "actions-")) for name in body["checks"]["workers"]["online"])


@pytest.mark.stack  # starts a Celery worker of its own
def test_readyz_turns_503_when_redis_stops_and_200_when_it_is_back(
    transactional_db, service_env, private_redis, http, settings, tmp_path
):
    """A real worker on a private Redis: its heartbeat makes /readyz 200; stopping that Redis
    makes it 503 naming redis; after a restart the worker's next beat makes it 200 again."""
    settings.REDIS_URL = private_redis.url
    settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS = 5
    settings.METRICS_TOKEN = "t"  # the details are for a metrics reader
    http = Client(HTTP_AUTHORIZATION="Bearer t")
    no_worker = http.get("/readyz")
    assert no_worker.status_code == 503
    assert no_worker.json()["failed"] == ["workers"]

    worker = start_celery(
        [
            "worker",
            "-Q",
            "probe-only",
            "-c",
            "1",  # prefork, as deployed: beats come from the worker's event loop, not a task
            "-l",
            "info",
            "-n",
            "probe@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env={**service_env, "REDIS_URL": private_redis.url, "WORKER_HEARTBEAT_SECONDS": "1"},
        log=tmp_path / "worker.log",
        ready_marker="ready.",
    )
    try:
        ready = wait_until(
            lambda: (r := http.get("/readyz")).status_code == 200 and r, timeout=20, message="readyz 200"
        )
        assert all(name.startswith("probe@") for name in ready.json()["checks"]["workers"]["online"])

        # The worker's Docker health check: the same checks, and this worker's own heartbeat.
        name = next(iter(ready.json()["checks"]["workers"]["online"]))
        call_command("readyz", worker=name, stdout=StringIO())
        with pytest.raises(CommandError, match="workers"):
            call_command("readyz", worker="gone@nowhere", stdout=StringIO())

        private_redis.stop()
        down = http.get("/readyz")
        assert down.status_code == 503
        body = down.json()
        assert body["code"] == "not_ready" and "redis" in body["failed"]
        assert body["checks"]["postgresql"]["ok"] is True
        assert "redis" in body["detail"]

        private_redis.start()  # same port, empty: only the worker's next beat can make it ready
        wait_until(lambda: http.get("/readyz").status_code == 200, timeout=30, message="readyz 200 again")
    finally:
        stop_process(worker)
    # A clean shutdown takes the worker's entry out at once.
    assert heartbeats_read(client=redis.Redis.from_url(private_redis.url)) == {}
