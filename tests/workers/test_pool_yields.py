"""Warm-pool refills yield to user creates (issue 20 item 4): while a session of this host waits
for its browser to start, a refill starts no pool browser and gives its reserved rows back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import account_create
from sessions.models import BrowserSession, SessionStatus, WarmBrowser, WorkerHost
from tests.support.processes import wait_until
from workers import services

# This run's worker host heartbeats, and browsers start through the egress filter: the stack tier.
pytestmark = pytest.mark.usefixtures("live_worker")


def test_a_refill_starts_nothing_while_a_create_waits_for_a_start(plans, settings, monkeypatch):
    settings.BROWSER_POOL_SIZE = 2
    settings.BROWSER_BACKEND = "local"
    # This run's lifecycle worker heartbeats this host: the pool may be placed here.
    host = WorkerHost.objects.filter(pk=settings.WORKER_HOST)
    wait_until(host.exists, timeout=30, message="the host's heartbeat")
    account = account_create(name="pool-yields", plan_name="enterprise")[0]
    now = timezone.now()
    BrowserSession.objects.create(
        account=account, status=SessionStatus.STARTING, created_at=now, last_activity_at=now,
        host=settings.WORKER_HOST, expires_at=now + timedelta(seconds=600), max_lifetime_seconds=600,
        inactivity_timeout_seconds=600,
    )  # fmt: skip
    asked: list[str] = []
    real_start = services.LocalBackend.start

    def start(self, **kwargs):  # the real start, counted
        asked.append(kwargs["session_id"])
        return real_start(self, **kwargs)

    monkeypatch.setattr(services.LocalBackend, "start", start)
    assert services.pool_refill(host=settings.WORKER_HOST) == 0
    assert asked == []
    assert not WarmBrowser.objects.filter(host=settings.WORKER_HOST).exists()
