"""/readyz answers only ok/failed to anyone; worker names and error text are for the metrics token
(issue 19 item 12). Database only: a heartbeat written as a worker writes it, Redis made
unreachable by pointing at a free loopback port."""

from __future__ import annotations

import pytest
from django.test import Client

from project.heartbeat import heartbeat_remove, heartbeat_write
from tests.conftest import free_port

WORKER = "lifecycle-secret-host-7@10.9.8.7"


@pytest.fixture
def worker_beating():
    heartbeat_write(WORKER)
    yield
    heartbeat_remove(WORKER)


def test_a_ready_service_tells_the_public_only_that_it_is_ready(db, worker_beating, settings):
    settings.METRICS_TOKEN = "probe-token"
    public = Client().get("/readyz")
    assert public.status_code == 200
    assert public.json() == {"status": "ok"}
    full = Client().get("/readyz", HTTP_AUTHORIZATION="Bearer probe-token")
    assert full.status_code == 200 and WORKER in full.json()["checks"]["workers"]["online"]
    wrong = Client().get("/readyz", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 200 and wrong.json() == {"status": "ok"}


def test_a_failing_check_is_not_described_to_the_public(db, settings):
    settings.METRICS_TOKEN = "probe-token"
    port = free_port()
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/3"  # nothing listens there
    public = Client().get("/readyz")
    assert public.status_code == 503
    body = public.json()
    assert body["code"] == "not_ready" and body["status"] == "error"
    text = public.content.decode()
    assert str(port) not in text and "redis" not in text.lower() and "checks" not in body
    full = Client().get("/readyz", HTTP_AUTHORIZATION="Bearer probe-token")
    assert full.status_code == 503 and "redis" in full.json()["failed"]
