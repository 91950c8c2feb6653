"""session.expiring, decided on the database alone (fast tier: no worker, nothing delivered)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Plan
from accounts.plans import seed_plans
from accounts.services import account_create
from sessions.expiry_warnings import sessions_warn_expiring
from sessions.models import BrowserSession
from webhooks.models import Endpoint, Event


@pytest.fixture
def account(db):
    seed_plans(Plan)
    account = account_create(name="expiring", plan_name="pro")[0]
    Endpoint.objects.create(account=account, url="http://127.0.0.1:9/x", events=["session.expiring"])
    return account


def _row(account, *, expires_in: float, idle_in: float | None, status: str = "running") -> BrowserSession:
    now = timezone.now()
    return BrowserSession.objects.create(
        account=account,
        status=status,
        created_at=now,
        last_activity_at=now,
        expires_at=now + timedelta(seconds=expires_in),
        idle_expires_at=None if idle_in is None else now + timedelta(seconds=idle_in),
        idle_timeout_enabled=idle_in is not None,
        max_lifetime_seconds=3600,
        inactivity_timeout_seconds=120,
    )


def _events() -> dict[str, dict]:
    return {
        e.payload["data"]["session_id"]: e.payload["data"]
        for e in Event.objects.filter(type="session.expiring")
    }


def test_sessions_ending_within_a_minute_are_warned_once_with_the_nearer_deadline(account):
    idle = _row(account, expires_in=3000, idle_in=40)
    lifetime = _row(account, expires_in=30, idle_in=None)
    later = _row(account, expires_in=3000, idle_in=300)
    starting = _row(account, expires_in=3000, idle_in=20, status="starting")  # idle runs from ready
    assert sessions_warn_expiring() == 2
    events = _events()
    assert set(events) == {idle.pk, lifetime.pk}
    assert events[idle.pk]["reason"] == "idle" and 0 < events[idle.pk]["seconds_left"] <= 40
    assert events[lifetime.pk]["reason"] == "max_lifetime"
    assert later.pk not in events and starting.pk not in events
    assert sessions_warn_expiring() == 0  # the next run warns nobody again


def test_a_new_idle_deadline_is_warned_again(account):
    session = _row(account, expires_in=3000, idle_in=40)
    assert sessions_warn_expiring() == 1
    BrowserSession.objects.filter(pk=session.pk).update(
        idle_expires_at=timezone.now() + timedelta(seconds=50)
    )
    assert sessions_warn_expiring() == 1
    assert Event.objects.filter(type="session.expiring").count() == 2


def test_accounts_without_an_endpoint_cost_nothing(account, django_assert_num_queries):
    other = account_create(name="no-hooks", plan_name="pro")[0]
    _row(other, expires_in=30, idle_in=None)
    with django_assert_num_queries(1):  # the candidates, none: one statement
        assert sessions_warn_expiring() == 0
    assert not Event.objects.exists()
