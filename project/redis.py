"""One Redis connection pool per process, for locks, counters and completion signals (and one
per event loop for the web process's streams and waiting requests)."""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import redis.asyncio
from django.conf import settings

C = TypeVar("C", bound=Callable[..., Any])


def one_per_process(factory: C) -> C:
    """functools.cache for a factory of Redis clients, made safe for threads: the first calls of
    many threads at once build one client, not one each.

    With functools.cache alone, every thread that asked before the first one returned built its
    own client; all but one were then dropped, and a dropped redis.Redis closes its connection
    pool when the garbage collector gets to it, from whichever thread it runs in, cutting the
    connections its caller was still using: `ValueError: I/O operation on closed file` (a 500)
    in a request of the web's first busy seconds (issue 20's fleet load run;
    tests/project/test_redis_client.py)."""
    cached = functools.cache(factory)
    lock = threading.Lock()

    @functools.wraps(factory)
    def once(*args: Any) -> Any:
        with lock:
            return cached(*args)

    once.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return once  # type: ignore[return-value]


@one_per_process
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=None, health_check_interval=30)


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
    weakref.WeakKeyDictionary()
)


def get_async_redis() -> redis.asyncio.Redis:
    """The running event loop's client (redis.asyncio), for the ASGI web process's waiting
    requests (project/awaiting.py): one waiting on Redis holds a connection of this pool, never a
    thread. Answers are str. (The streams read through their process's one reader instead:
    sessions/stream_hub.py.)"""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = redis.asyncio.Redis.from_url(
            settings.REDIS_URL,
            decode_responses=True,
            health_check_interval=30,
            # Above the longest blocking read: a stream's (sessions/streams.py), a completion
            # wait's (project/awaiting.py: an action's or a create's budget).
            socket_timeout=max(
                settings.STREAM_KEEPALIVE_SECONDS,
                settings.ACTION_WAIT_SECONDS,
                settings.SESSION_CREATE_WAIT_SECONDS,
            )
            + 15,
        )
        _async_clients[loop] = client
    return client
