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

from project.exceptions import TooManyRequests
from project.redis import get_redis


def _key(account_id: int) -> str:
    return f"bf:inflight:{account_id}"


def inflight_slot_take(*, account_id: int, slot_ttl: float) -> str | None:
    """Take one of the account's ACCOUNT_MAX_INFLIGHT_REQUESTS slots; None when all are held."""
    limit = settings.ACCOUNT_MAX_INFLIGHT_REQUESTS
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
def inflight_slot(*, account_id: int, wait_seconds: float) -> Iterator[None]:
    """Hold a slot while the request waits up to `wait_seconds`; 429 with Retry-After when the
    account already has ACCOUNT_MAX_INFLIGHT_REQUESTS waiting requests."""
    token = inflight_slot_take(account_id=account_id, slot_ttl=wait_seconds + 30)
    if token is None:
        limit = settings.ACCOUNT_MAX_INFLIGHT_REQUESTS
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
        inflight_slot_release(account_id=account_id, token=token)
