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
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError

from project.exceptions import InvalidInput, TooManyRequests
from project.redis import get_async_redis
from project.slots import slot_refresh_async, slot_release_async, slot_take
from project.web_threads import run_in_web_thread
from sessions.events import STATUS, events_key, session_status_event
from sessions.models import BrowserSession, SessionStatus
from sessions.screencast import WATCHER_TTL_SECONDS, frames_key, watchers_key

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
    token = slot_take(key=_slots_key(account_id), limit=limit, ttl=_slot_ttl())
    if token is None:
        raise TooManyRequests(
            f"This account already has {limit} streams open; close one first.",
            code="too_many_open_streams",
            retry_after=5,
            extra={"limit": limit},
        )
    return token


async def _slot_refresh(account_id: int, token: str) -> None:
    await slot_refresh_async(key=_slots_key(account_id), token=token, ttl=_slot_ttl())


async def _slot_release(account_id: int, token: str) -> None:
    await slot_release_async(key=_slots_key(account_id), token=token)  # else it drops out after _slot_ttl()


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


SCREENCAST_HEARTBEAT_SECONDS = 30  # Tzafon's contract: a `: heartbeat` comment every 30 s
_WATCH_REFRESH_SECONDS = 3.0
_END_CHECK_SECONDS = 5.0


def _frame_event(fields: dict[str, str]) -> bytes:
    # Built by hand: the image is already base64 (JSON-safe), and re-encoding it costs for nothing.
    image = fields.get("image_data", "")
    metadata = fields.get("metadata", "{}")
    return b'data: {"image_data":"' + image.encode() + b'","metadata":' + metadata.encode() + b"}\n\n"


async def _latest_id(client: Any, key: str) -> tuple[str, dict[str, str] | None]:
    latest = await client.xrevrange(key, count=1)
    return (latest[0][0], latest[0][1]) if latest else ("0-0", None)


async def session_screencast_stream(
    *, session_id: str, account_id: int, slot: str, watcher: str, until: float | None = None
) -> AsyncIterator[bytes]:
    """Frames of the session's page as its host's caster sends them (the latest one first), a
    heartbeat every 30 s, until the session ends (its `terminated` event, or its row)."""
    client = get_async_redis()
    frames, events = frames_key(session_id), events_key(session_id)
    loop_time = time.monotonic
    try:
        yield b": heartbeat\n\n"
        frame_cursor, latest = await _latest_id(client, frames)
        if latest is not None:
            yield _frame_event(latest)
        event_cursor, last_event = await _latest_id(client, events)
        if last_event is not None and _is_end(last_event.get("event", ""), last_event.get("data", "")):
            return
        beat = refreshed = checked = loop_time()
        while True:
            try:
                reply: Any = await client.xread({frames: frame_cursor, events: event_cursor}, block=1000)
            except RedisError as exc:
                logger.warning("screencast of %s: Redis failed (%r)", session_id, exc)
                yield sse(
                    event="error",
                    data={"code": "service_unavailable", "detail": "The stream is briefly unavailable."},
                )
                return
            for key, entries in reply or []:
                for entry_id, fields in entries:
                    if key == frames:
                        frame_cursor = entry_id
                        yield _frame_event(fields)
                    else:
                        event_cursor = entry_id
                        if _is_end(fields.get("event", ""), fields.get("data", "")):
                            return
            now = loop_time()
            if until is not None and time.time() >= until:
                return  # a live viewer's link expired
            if now - beat >= SCREENCAST_HEARTBEAT_SECONDS:
                beat = now
                yield b": heartbeat\n\n"
            if now - refreshed >= _WATCH_REFRESH_SECONDS:
                refreshed = now
                await client.zadd(watchers_key(session_id), {watcher: time.time()})
                await client.expire(watchers_key(session_id), WATCHER_TTL_SECONDS * 3)
                await _slot_refresh(account_id, slot)
            if now - checked >= _END_CHECK_SECONDS:
                checked = now
                if await run_in_web_thread(_ended_status, session_id) is not None:
                    return
    finally:
        with contextlib.suppress(RedisError):
            await client.zrem(watchers_key(session_id), watcher)
        await _slot_release(account_id, slot)
