"""Failed-authentication lockout per client IP, kept in Redis.

A sorted set per IP holds the times of its failed authentications. With `max_failures` of them
inside the sliding window, the IP is locked out until the oldest of those leaves the window.
"""

from __future__ import annotations

import math
import time
import uuid

from django.conf import settings
from django.http import HttpRequest

from project.redis import get_redis

# Totals since Redis began, read by GET /metrics as counters (never expire, never reset by us).
AUTH_FAILURES_TOTAL_KEY = "bf:metrics:auth_failures_total"
AUTH_LOCKOUTS_TOTAL_KEY = "bf:metrics:auth_lockouts_total"


def _key(ip: str) -> str:
    return f"bf:authfail:{ip}"


def client_ip(request: HttpRequest) -> str:
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return str(request.META.get("REMOTE_ADDR", ""))


def lockout_retry_after(ip: str, *, now: float | None = None) -> int | None:
    """Seconds until `ip` may try again, or None when it is not locked out."""
    now = time.time() if now is None else now
    window = settings.AUTH_LOCKOUT_WINDOW_SECONDS
    limit = settings.AUTH_LOCKOUT_MAX_FAILURES
    redis = get_redis()
    # On every request: a count, not the members, until the address is near the limit.
    if redis.zcount(_key(ip), now - window, "+inf") < limit:
        return None
    recent = redis.zrangebyscore(_key(ip), now - window, "+inf", withscores=True)
    if len(recent) < limit:
        return None
    # Unlocked once fewer than `limit` failures remain in the window.
    nth_newest = recent[-limit][1]
    return max(1, math.ceil(nth_newest + window - now))


def lockout_record_failure(ip: str, *, now: float | None = None) -> None:
    now = time.time() if now is None else now
    window = settings.AUTH_LOCKOUT_WINDOW_SECONDS
    key = _key(ip)
    pipe = get_redis().pipeline()
    pipe.zadd(key, {uuid.uuid4().hex: now})
    pipe.zremrangebyscore(key, "-inf", now - window)
    pipe.expire(key, window)
    pipe.zcard(key)
    pipe.incr(AUTH_FAILURES_TOTAL_KEY)
    in_window = pipe.execute()[3]
    # The failure that reaches the limit starts a lockout; later ones only prolong it.
    if in_window == settings.AUTH_LOCKOUT_MAX_FAILURES:
        get_redis().incr(AUTH_LOCKOUTS_TOTAL_KEY)
