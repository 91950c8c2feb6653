"""Requests of one account that hold a web thread while they wait (action results, browser starts).

Plans limit requests per minute, not at once: without this, one account's parallel 45 s waits
could hold every web thread. Each waiting request holds a slot, a member of a Redis sorted set
scored by when it was taken; a slot a crashed web process never gave back drops out after
`slot_ttl` seconds, so a leak cannot lock an account out for good.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from accounts.models import Account
from project.exceptions import TooManyRequests
from project.redis import get_redis


def _key(account_id: int) -> str:
    return f"bf:inflight:{account_id}"


def inflight_limit(account: Account) -> int:
    """The account's plan's `max_waiting_requests`, else ACCOUNT_MAX_INFLIGHT_REQUESTS (0: none)."""
    limit = account.plan.max_waiting_requests
    return settings.ACCOUNT_MAX_INFLIGHT_REQUESTS if limit is None else limit


def inflight_slot_take(*, account_id: int, limit: int, slot_ttl: float) -> str | None:
    """Take one of the account's `limit` slots; None when all are held."""
    if limit <= 0:
        return ""  # no limit
    key, token, now = _key(account_id), uuid.uuid4().hex, time.time()
    pipe = get_redis().pipeline(transaction=True)
    pipe.zremrangebyscore(key, "-inf", now - slot_ttl)
    pipe.zadd(key, {token: now})
    pipe.zcard(key)
    pipe.expire(key, int(slot_ttl) + 1)
    held = int(pipe.execute()[2])
    if held > limit:
        get_redis().zrem(key, token)
        return None
    return token


def inflight_slot_release(*, account_id: int, token: str) -> None:
    if token:
        get_redis().zrem(_key(account_id), token)


@contextmanager
def inflight_slot(*, account: Account, wait_seconds: float) -> Iterator[None]:
    """Hold a slot while the request waits up to `wait_seconds`; 429 with Retry-After when the
    account already has its plan's number of waiting requests (inflight_limit)."""
    limit = inflight_limit(account)
    token = inflight_slot_take(account_id=account.pk, limit=limit, slot_ttl=wait_seconds + 30)
    if token is None:
        raise TooManyRequests(
            f"This account already has {limit} requests waiting for results; wait for one to answer "
            "(or send actions with ?wait=false and poll them).",
            code="too_many_requests_in_flight",
            retry_after=1,
            extra={"limit": limit},
        )
    try:
        yield
    finally:
        inflight_slot_release(account_id=account.pk, token=token)
