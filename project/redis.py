"""One Redis connection pool per process, for locks, counters and completion signals."""

from __future__ import annotations

import functools

import redis
from django.conf import settings


@functools.cache
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=None, health_check_interval=30)
