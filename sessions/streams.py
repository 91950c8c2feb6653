"""Server-sent event streams of a session, served on the ASGI event loop (project/asgi.py).

A stream is an async generator reading Redis with redis.asyncio: while it waits it holds a
Redis connection of the loop's pool and no thread. Each open stream holds one of its account's
ACCOUNT_MAX_OPEN_STREAMS slots: a member of a Redis sorted set scored by when the stream last
showed it was alive; a stream whose process died drops out after `_SLOT_TTL_SECONDS`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError

from project.exceptions import InvalidInput, TooManyRequests
from project.redis import get_async_redis, get_redis
from project.web_threads import run_in_web_thread
from sessions.events import STATUS, events_key, session_status_event
from sessions.models import BrowserSession, SessionStatus

logger = logging.getLogger(__name__)

_EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _slot_ttl() -> float:
    # Three keepalives: a live stream refreshes its slot at each.
    return settings.STREAM_KEEPALIVE_SECONDS * 3 + 5


def _slots_key(account_id: int) -> str:
    return f"bf:streams:{account_id}"


def stream_slot_take(*, account_id: int) -> str:
    """One of the account's open-stream slots; 429 with Retry-After when all are held."""
    limit = settings.ACCOUNT_MAX_OPEN_STREAMS
    key, token, now = _slots_key(account_id), uuid.uuid4().hex, time.time()
    pipe = get_redis().pipeline(transaction=True)
    pipe.zremrangebyscore(key, "-inf", now - _slot_ttl())
    pipe.zadd(key, {token: now})
    pipe.zcard(key)
    pipe.expire(key, int(_slot_ttl()) + 1)
    held = int(pipe.execute()[2])
    if held > limit:
        get_redis().zrem(key, token)
        raise TooManyRequests(
            f"This account already has {limit} streams open; close one first.",
            code="too_many_open_streams",
            retry_after=5,
            extra={"limit": limit},
        )
    return token


async def _slot_refresh(account_id: int, token: str) -> None:
    key = _slots_key(account_id)
    client = get_async_redis()
    await client.zadd(key, {token: time.time()}, xx=True)
    await client.expire(key, int(_slot_ttl()) + 1)


async def _slot_release(account_id: int, token: str) -> None:
    with contextlib.suppress(RedisError):  # else it drops out after _slot_ttl()
        await get_async_redis().zrem(_slots_key(account_id), token)


def last_event_id_of(raw: str | None) -> str:
    """The stream position to resume after ("0-0": from the oldest event kept)."""
    if not raw:
        return "0-0"
    if not _EVENT_ID.match(raw.strip()):
        raise InvalidInput("Last-Event-ID must be an id this stream sent (e.g. 1733112000000-0).")
    return raw.strip()


def sse(*, event: str | None = None, data: Any, event_id: str | None = None) -> bytes:
    lines = []
    if event_id:
        lines.append(f"id: {event_id}")
    if event:
        lines.append(f"event: {event}")
    lines.append("data: " + (data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))))
    return ("\n".join(lines) + "\n\n").encode()


def _ended_status(session_id: str) -> dict[str, Any] | None:
    """The session's terminated status event data, or None while it is live (a web thread)."""
    row = (
        BrowserSession.objects.filter(pk=session_id).values_list("status", "ended_reason", "ended_at").first()
    )
    if row is None or row[0] != SessionStatus.TERMINATED:
        return None
    return session_status_event(session_id=session_id, status=row[0], ended_reason=row[1], at=row[2])[2]


def _is_end(event: str, data: str) -> bool:
    return event == STATUS and '"status":"terminated"' in data


async def session_event_stream(
    *, session_id: str, account_id: int, slot: str, after: str, ended: bool
) -> AsyncIterator[bytes]:
    """The session's events from `after` on, then live ones, until it has ended (`ended`: it had
    when the stream was asked for; then only what is kept is sent)."""
    key = events_key(session_id)
    keepalive_ms = settings.STREAM_KEEPALIVE_SECONDS * 1000
    client = get_async_redis()
    try:
        yield b"retry: 2000\n\n"
        while True:
            try:
                reply: Any = await client.xread(
                    {key: after}, count=200, block=None if ended else keepalive_ms
                )
            except RedisError as exc:
                logger.warning("event stream of %s: Redis failed (%r)", session_id, exc)
                yield sse(
                    event="error",
                    data={
                        "code": "service_unavailable",
                        "detail": "The event stream is briefly unavailable.",
                    },
                )
                return
            if not reply and ended:
                # Its end is no longer kept (or was never written): say it from the row.
                final = await run_in_web_thread(_ended_status, session_id)
                if final is not None:
                    yield sse(event=STATUS, data=final)
                return
            if not reply:
                # Nothing for a while: say so, keep the slot, and end if the session ended without
                # its event reaching Redis (written while Redis was away).
                yield b": keepalive\n\n"
                await _slot_refresh(account_id, slot)
                gone = await run_in_web_thread(_ended_status, session_id)
                if gone is not None:
                    yield sse(event=STATUS, data=gone)
                    return
                continue
            entries: list[tuple[str, dict[str, str]]] = reply[0][1]
            for entry_id, fields in entries:
                after = entry_id
                event, data = fields.get("event", "message"), fields.get("data", "{}")
                yield sse(event=event, data=data, event_id=entry_id)
                if _is_end(event, data):
                    return
    finally:
        await _slot_release(account_id, slot)
