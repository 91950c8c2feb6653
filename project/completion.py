"""Completion signals from workers to the web process that waits for them.

The worker pushes one message onto a per-event Redis list; the single waiter pops it with a
blocking pop. The list outlives a late waiter for a few minutes, so the order of the two never
matters, and the waiter's wake-up is immediate (no polling). The web process waits on its event
loop (`completion_wait_async`, project/awaiting.py), holding a connection of the loop's Redis
pool and no thread; a sync caller (a worker, a sync handler) blocks its thread instead.
"""

from __future__ import annotations

import json
from typing import Any

from redis.client import Pipeline

from project.db import connection_release
from project.redis import get_async_redis, get_redis

_TTL_SECONDS = 300


def _key(event: str) -> str:
    return f"bf:done:{event}"


def completion_commands(pipe: Pipeline, event: str, payload: dict[str, Any] | None = None) -> None:
    """Add the signal's commands to `pipe` (two replies), to send it with other commands."""
    key = _key(event)
    pipe.rpush(key, json.dumps(payload or {}))
    pipe.expire(key, _TTL_SECONDS)


def completion_publish(event: str, payload: dict[str, Any] | None = None) -> None:
    pipe = get_redis().pipeline(transaction=False)  # one round trip; no MULTI/EXEC needed
    completion_commands(pipe, event, payload)
    pipe.execute()


def completion_wait(event: str, *, timeout: float) -> dict[str, Any] | None:
    """The event's payload, or None if it did not come within `timeout` seconds."""
    if timeout <= 0:
        return None
    connection_release()  # the wait needs no database connection: another thread may use it
    reply = get_redis().blpop([_key(event)], timeout=timeout)
    if reply is None:
        return None
    return dict(json.loads(reply[1]))


async def completion_wait_async(event: str, *, timeout: float) -> dict[str, Any] | None:
    """`completion_wait` on the event loop (redis.asyncio): no thread, no database connection.
    Cancelled (the client went away), its Redis connection is closed, which ends the BLPOP."""
    if timeout <= 0:
        return None
    reply = await get_async_redis().blpop([_key(event)], timeout=timeout)
    if reply is None:
        return None
    return dict(json.loads(reply[1]))
