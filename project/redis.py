"""One Redis connection pool per process, for locks, counters and completion signals (and one
per event loop for the web process's streams)."""

from __future__ import annotations

import asyncio
import functools
import weakref

import redis
import redis.asyncio
from django.conf import settings


@functools.cache
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=None, health_check_interval=30)


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
    weakref.WeakKeyDictionary()
)


def get_async_redis() -> redis.asyncio.Redis:
    """The running event loop's client (redis.asyncio), for async code of the ASGI web process:
    a coroutine waiting on Redis holds a connection of this pool, never a thread. Answers are str.
    (The streams read through their process's one reader instead: sessions/stream_hub.py.)"""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = redis.asyncio.Redis.from_url(
            settings.REDIS_URL,
            decode_responses=True,
            health_check_interval=30,
            # Above the longest blocking read of a stream (sessions/streams.py).
            socket_timeout=settings.STREAM_KEEPALIVE_SECONDS + 15,
        )
        _async_clients[loop] = client
    return client
