"""Beat's sweep and reconciles never wait behind browser starts (issue 20).

They run on their own queue (`maintenance`), which the actions worker's threads consume, not on
`lifecycle`, whose few processes may all be starting Chromium. The test freezes the lifecycle
worker outright (SIGSTOP: busier than any number of starts) and expects an idle session to end
on time anyway.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.services import account_create
from sessions.models import BrowserSession
from tests.support.processes import wait_until

# The suite's worker host and Beat are the point: the stack tier.
pytestmark = pytest.mark.usefixtures("live_worker")


def _lifecycle_worker_pids() -> list[int]:
    """This test run's lifecycle worker processes (the main one and its children)."""
    database = f"POSTGRES_DB={connection.settings_dict['NAME']}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"celery" in cmdline and b"lifecycle," in cmdline and database in environ.split(b"\0"):
            pids.append(int(proc.name))
    return pids


@contextmanager
def _frozen(pids: list[int]) -> Iterator[None]:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


@pytest.fixture
def idle_session(plans):
    """A live session whose idle deadline is 2 s away (a row: the sweep needs no browser)."""
    account = account_create(name="maintenance", plan_name="enterprise")[0]
    now = timezone.now()
    return BrowserSession.objects.create(
        account=account, status="ready", created_at=now, last_activity_at=now,
        expires_at=now + timedelta(seconds=600), idle_expires_at=now + timedelta(seconds=2),
        idle_timeout_enabled=True, max_lifetime_seconds=600, inactivity_timeout_seconds=2,
    )  # fmt: skip


def test_idle_expiry_ends_on_time_while_the_lifecycle_worker_cannot_take_a_task(idle_session):
    pids = _lifecycle_worker_pids()
    assert pids, "the lifecycle worker of this run was not found"
    # Frozen for less than HOST_DEAD_AFTER_SECONDS (8 in tests): the host stays alive.
    with _frozen(pids):
        row = wait_until(
            lambda: BrowserSession.objects.filter(pk=idle_session.pk, ended_at__isnull=False).first(),
            timeout=6,
            message="the idle session ended by the sweep",
        )
    assert row.ended_reason == "idle"
    late = (row.ended_at - row.idle_expires_at).total_seconds()
    assert late <= settings.SESSION_SWEEP_INTERVAL_SECONDS + 2, f"ended {late:.2f} s after its idle deadline"
    # Thawed, the lifecycle worker runs its stop task.
    wait_until(
        lambda: BrowserSession.objects.filter(pk=row.pk, browser_released_at__isnull=False).exists(),
        timeout=30,
        message="released",
    )
