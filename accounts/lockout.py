"""Failed-authentication lockout per client IP, kept in Redis.

A sorted set per IP holds the times of its failed authentications. With `max_failures` of them
inside the sliding window, the IP is locked out until the oldest of those leaves the window.
IPv6 clients are counted per /64: one host usually holds a whole /64 and could rotate inside it.

The client address is the one the nearest trusted proxy saw: with `TRUSTED_PROXY_COUNT` = N
proxies in front, the Nth `X-Forwarded-For` entry from the right (each proxy appends the address
it received from); everything left of it is whatever the client chose to send.
"""

from __future__ import annotations

import ipaddress
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
    return f"bf:authfail:{lockout_subject(ip)}"


def lockout_subject(ip: str) -> str:
    """What failures are counted against: the IPv4 address, or the IPv6 address's /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def client_ip(request: HttpRequest) -> str:
    remote = str(request.META.get("REMOTE_ADDR", ""))
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    entries = [e.strip() for e in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if e.strip()]
    if not entries:
        return remote
    # Fewer entries than proxies: none of them came from the client, the leftmost is the oldest.
    candidate = entries[-proxies] if len(entries) >= proxies else entries[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote  # a proxy that appends something else (host:port, "unknown") is misconfigured


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
    nth_newest = float(recent[-limit][1])
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
