"""Per-host browser start slots: at most BROWSER_STARTS_PER_HOST local Chromium starts at once.

A Chromium start is a burst of ~1.8 core-seconds. Started all at once on a saturated host (the
lifecycle worker's children, the jobs worker, pool refills), every start slowed down together
until their DevTools calls timed out and their creates answered 503 browser_start_failed (issue
20: 23-25 of 80). With slots, a start beyond them waits (its create waits with it, within the
create's own budget) and then runs at the speed of the host.

A slot is a member of a Redis sorted set per host, scored by the end of its lease: a process
killed in the middle of a start gives its slot back when the lease ends (a start's own bound).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings

from project.redis import get_redis

logger = logging.getLogger(__name__)

# How often a waiting start asks again: a start takes ~0.3 to 2 s, so 50 ms is lost at most.
POLL_SECONDS = 0.05

# Remove the leases that ended; take a slot if fewer than the limit are held. Atomic, so two
# starts never both take the last slot.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    return 1
end
return 0
"""


def _key(host: str) -> str:
    return f"bf:start-slots:{host}"


def lease_seconds() -> float:
    """A start's bound (its WebDriver calls and chromedriver's own start): a slot held longer
    belongs to a process that died."""
    return float(settings.BROWSER_START_TIMEOUT_SECONDS + 15)


def start_slot_take(*, host: str) -> str | None:
    """Take one of the host's slots now; None when all are held."""
    token, now, lease = uuid.uuid4().hex, time.time(), lease_seconds()
    taken = get_redis().eval(
        _TAKE, 1, _key(host), now, settings.BROWSER_STARTS_PER_HOST, now + lease, token, int(lease) + 1
    )
    return token if taken else None


def start_slot_release(*, host: str, token: str) -> None:
    get_redis().zrem(_key(host), token)


def start_slots_held(*, host: str) -> int:
    return int(get_redis().zcount(_key(host), time.time(), "+inf"))


@contextmanager
def start_slot(
    *, host: str, wait_seconds: float, still_wanted: Callable[[], bool] | None = None
) -> Iterator[bool]:
    """Hold a start slot of `host` for the block; wait up to `wait_seconds` for one, and stop
    waiting as soon as `still_wanted` (asked about twice a second) says the start is no longer
    wanted. Yields whether a slot is held: the caller starts nothing without one."""
    began = time.monotonic()
    deadline = began + wait_seconds
    next_ask = began + 0.5
    token = start_slot_take(host=host)
    waited = token is None
    while token is None and time.monotonic() < deadline:
        if still_wanted is not None and time.monotonic() >= next_ask:
            if not still_wanted():
                break
            next_ask = time.monotonic() + 0.5
        time.sleep(POLL_SECONDS)
        token = start_slot_take(host=host)
    if waited:
        outcome = "took one" if token else "got none"
        logger.info(
            "a start on %s waited %.1f s for a start slot and %s", host, time.monotonic() - began, outcome
        )
    try:
        yield token is not None
    finally:
        if token is not None:
            start_slot_release(host=host, token=token)
