"""Counted slots in Redis: at most `limit` holders of one key at once (an account's waiting
requests, its open streams).

Each holder is a member of a sorted set scored by when it last showed it was alive; a holder whose
process died without giving its slot back drops out after `ttl` seconds, so a leak cannot lock an
account out for good. Taking is sync (a web thread accepts the request); giving back and
refreshing have an async twin for holders that live on the event loop (project/awaiting.py,
sessions/streams.py).
"""

from __future__ import annotations

import contextlib
import time
import uuid

import redis.asyncio
from redis.exceptions import RedisError

from project.redis import get_async_redis, get_redis


def slot_take(*, key: str, limit: int, ttl: float) -> str | None:
    """A token for one of the key's `limit` slots; None when all are held."""
    token, now = uuid.uuid4().hex, time.time()
    pipe = get_redis().pipeline(transaction=True)
    pipe.zremrangebyscore(key, "-inf", now - ttl)
    pipe.zadd(key, {token: now})
    pipe.zcard(key)
    pipe.expire(key, int(ttl) + 1)
    held = int(pipe.execute()[2])
    if held > limit:
        get_redis().zrem(key, token)
        return None
    return token


def slot_release(*, key: str, token: str) -> None:
    get_redis().zrem(key, token)


async def slot_release_async(*, key: str, token: str, client: redis.asyncio.Redis | None = None) -> None:
    """Give the slot back from the event loop; with Redis away it drops out after its ttl.
    `client`: the loop's client to use (the streams' own pool: sessions/stream_hub.py)."""
    with contextlib.suppress(RedisError):
        await (client or get_async_redis()).zrem(key, token)


async def slot_refresh_async(
    *, key: str, token: str, ttl: float, client: redis.asyncio.Redis | None = None
) -> None:
    pipe = (client or get_async_redis()).pipeline(transaction=False)
    pipe.zadd(key, {token: time.time()}, xx=True)
    pipe.expire(key, int(ttl) + 1)
    await pipe.execute()
