"""The leases of running actions: one thread per worker process renews them all."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.services import account_create
from project.redis import get_redis
from sessions.models import Action, ActionStatus, BrowserSession
from workers.action_runner import _LeaseKeeper, lock_key, lock_ttl_seconds


@pytest.fixture
def running(plans):
    account = account_create(name="leases", plan_name="enterprise")[0]
    now = timezone.now()
    rows = []
    for _ in range(3):
        session = BrowserSession.objects.create(
            account=account, status="running", created_at=now, last_activity_at=now,
            expires_at=now + timedelta(seconds=600), max_lifetime_seconds=600, inactivity_timeout_seconds=120,
        )  # fmt: skip
        rows.append(
            Action.objects.create(
                session=session,
                account=account,
                type="wait",
                params={"ms": 0},
                price=1,
                status=ActionStatus.RUNNING,
                started_at=now,
                lease_expires_at=now + timedelta(seconds=2),
            )
        )
    return rows


def _lease(action: Action):
    return Action.objects.values_list("lease_expires_at", flat=True).get(pk=action.pk)


def test_one_beat_renews_every_held_lease_and_rearms_every_lock(running):
    keeper = _LeaseKeeper()
    redis = get_redis()
    locks = []
    for action in running:
        lock = redis.lock(
            lock_key(action.session_id), timeout=lock_ttl_seconds(), blocking=False, thread_local=False
        )
        assert lock.acquire(blocking=False)
        redis.pexpire(lock.name, 2000)  # most of the lease has passed
        locks.append(lock)
    released = running[2]
    try:
        with keeper.hold(running[0], locks[0]), keeper.hold(running[1], locks[1]):
            with keeper.hold(released, locks[2]):
                pass  # finished before the beat: not renewed
            threads = [t for t in threading.enumerate() if t.name == "action-leases"]
            assert len(threads) == 1  # one for the process, not one per action
            before = timezone.now()
            keeper.beat()
            for action, lock in zip(running[:2], locks[:2], strict=True):
                assert _lease(action) >= before + timedelta(seconds=settings.ACTION_LEASE_SECONDS - 1)
                assert redis.pttl(lock.name) > 2000  # re-armed to the lease (ACTION_LEASE_SECONDS)
            assert _lease(released) < before + timedelta(seconds=3)
            assert redis.pttl(locks[2].name) <= 2000
        assert keeper.held() == []
    finally:
        for lock in locks:
            redis.delete(lock.name)
        connection.close()


def test_a_settled_action_is_not_renewed(running):
    keeper = _LeaseKeeper()
    lock = get_redis().lock(lock_key(running[0].session_id), timeout=3, blocking=False, thread_local=False)
    Action.objects.filter(pk=running[0].pk).update(status=ActionStatus.ERRORED, lease_expires_at=None)
    with keeper.hold(running[0], lock):
        keeper.beat()  # its lock is not held: re-arming it fails and is only logged
    assert _lease(running[0]) is None
