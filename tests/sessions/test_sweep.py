"""The sweep on its own: correctness under concurrency and what it reads."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.services import account_create
from sessions.models import BrowserSession
from sessions.services import sessions_sweep
from tests.support.rows import session_row


@pytest.fixture
def account(transactional_db, plans):
    # Committed rows: the sweeps below run in threads, on connections of their own.
    return account_create(name="sweep", plan_name="enterprise")[0]


def _row(account, *, expires_in: float, idle_in: float | None, status: str = "ready") -> BrowserSession:
    return session_row(account, status=status, expires_in=expires_in, idle_in=idle_in)


def test_two_concurrent_sweeps_end_each_session_once(account):
    # Sweeps that run "a minute from now", past deadlines 30 s ahead. No Beat runs meanwhile
    # (the fast tier runs before the worker and Beat start: tests/conftest.py).
    later = timezone.now() + timedelta(seconds=60)
    expired = [_row(account, expires_in=30, idle_in=None) for _ in range(30)]
    expired += [_row(account, expires_in=600, idle_in=30) for _ in range(30)]
    alive = [_row(account, expires_in=600, idle_in=600) for _ in range(10)]
    results: list[int] = []

    def sweep() -> None:
        results.append(sessions_sweep(now=later))
        connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 60
    assert (
        BrowserSession.objects.filter(
            pk__in=[s.pk for s in expired[:30]], ended_reason="max_lifetime"
        ).count()
        == 30
    )
    assert (
        BrowserSession.objects.filter(pk__in=[s.pk for s in expired[30:]], ended_reason="idle").count() == 30
    )
    assert BrowserSession.objects.filter(pk__in=[s.pk for s in alive], status="ready").count() == 10
    assert sessions_sweep(now=later) == 0


def test_sweep_reads_expired_rows_through_the_partial_indexes(account):
    from sessions.models import LIVE_STATUSES

    now = timezone.now()
    # A few rows make any plan cheap; forbid the sequential scan to see which index fits.
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
    try:
        from django.db.models import Q

        from sessions.models import SessionStatus

        # The sweep's two deadline queries, as sessions_sweep writes them.
        for deadline_passed, index in (
            (Q(expires_at__lte=now), "session_live_expires"),
            (
                Q(idle_timeout_enabled=True, idle_expires_at__lte=now) & ~Q(status=SessionStatus.STARTING),
                "session_live_idle_expires",
            ),
        ):
            plan = (
                BrowserSession.objects.filter(deadline_passed, status__in=LIVE_STATUSES)
                .values("pk")
                .explain()
            )
            assert index in plan, plan
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = on")


def test_sweep_ends_starts_that_never_finished(account):
    stuck = _row(account, expires_in=600, idle_in=600, status="starting")
    BrowserSession.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    fresh = _row(account, expires_in=600, idle_in=600, status="starting")
    assert sessions_sweep() == 1
    assert BrowserSession.objects.get(pk=stuck.pk).status == "terminated"
    assert BrowserSession.objects.get(pk=stuck.pk).ended_reason == "start_failed"
    assert BrowserSession.objects.get(pk=fresh.pk).status == "starting"
