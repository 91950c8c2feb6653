"""Liveness is written once (sessions/models.py): its Q objects, the accept statement's SQL
rendered from them and the Python `expiry_reason` give the same answer for every kind of row."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.services import account_create
from sessions.action_queue import _alive_sql
from sessions.models import BrowserSession, EndedReason, session_alive, session_expired


@pytest.fixture
def account(plans):
    return account_create(name="liveness", plan_name="enterprise")[0]


def test_every_form_of_liveness_agrees(account):
    # Deadlines relative to a `now` an hour ahead, so Beat's own sweep leaves these rows alone.
    now = timezone.now() + timedelta(hours=1)
    rows = []
    for status, lifetime_left, idle_enabled, idle_left in itertools.product(
        ("starting", "ready", "running", "terminated"), (-5, 0, 5), (True, False), (-5, 0, 5, None)
    ):
        rows.append(
            BrowserSession.objects.create(
                account=account,
                status=status,
                created_at=now - timedelta(minutes=1),
                last_activity_at=now - timedelta(minutes=1),
                expires_at=now + timedelta(seconds=lifetime_left),
                idle_expires_at=None if idle_left is None else now + timedelta(seconds=idle_left),
                idle_timeout_enabled=idle_enabled,
                max_lifetime_seconds=3600,
                inactivity_timeout_seconds=60,
                # An ended row's browser is gone: nothing for the teardown to wait for.
                browser_released_at=now if status == "terminated" else None,
            )
        )
    ids = [row.pk for row in rows]
    alive_q = set(BrowserSession.objects.filter(session_alive(now), pk__in=ids).values_list("pk", flat=True))
    expired_q = set(
        BrowserSession.objects.filter(session_expired(now), pk__in=ids).values_list("pk", flat=True)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM browser_sessions_browsersession WHERE id = ANY(%(ids)s) AND {_alive_sql()}",  # noqa: S608
            {"ids": ids, "now": now},
        )
        alive_sql = {row[0] for row in cursor.fetchall()}
    alive_py = {row.pk for row in rows if row.is_live and row.expiry_reason(now) is None}
    expired_py = {row.pk for row in rows if row.expiry_reason(now) is not None}
    assert alive_q == alive_sql == alive_py
    assert expired_q == expired_py
    # The matrix holds every case: alive, past its lifetime, idle, and a starting row whose idle
    # deadline passed (alive: the idle timer does not run while the browser starts).
    reasons = {row.expiry_reason(now) for row in rows}
    assert {None, EndedReason.MAX_LIFETIME, EndedReason.IDLE} <= reasons
    starting_idle = [
        r
        for r in rows
        if r.status == "starting" and r.idle_timeout_enabled and r.idle_expires_at and r.idle_expires_at < now
    ]
    assert any(r.pk in alive_q for r in starting_idle)
