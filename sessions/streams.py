"""Server-sent event streams of a session, served on the ASGI event loop (project/asgi.py).

A stream is an async generator fed by its process's one Redis reader (sessions/stream_hub.py):
while it waits it holds no thread and no Redis connection of its own. Each open stream holds one
of its account's ACCOUNT_MAX_OPEN_STREAMS slots: a member of a Redis sorted set scored by when the stream last
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
from project.slots import slot_refresh_async, slot_release_async, slot_take
from project.web_threads import run_in_web_thread
from sessions.events import STATUS, events_key, session_status_event
from sessions.models import BrowserSession, SessionStatus
from sessions.screencast import WATCHER_TTL_SECONDS, frames_key, watchers_key
from sessions.stream_hub import Subscription, stream_hub

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
    await slot_refresh_async(
        key=_slots_key(account_id), token=token, ttl=_slot_ttl(), client=stream_hub().commands
    )


async def _slot_release(account_id: int, token: str) -> None:
    # (Else it drops out after _slot_ttl().)
    await slot_release_async(key=_slots_key(account_id), token=token, client=stream_hub().commands)


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


async def _ended(session_id: str, *, max_age: float) -> dict[str, Any] | None:
    """`_ended_status`, asked once per process and session within `max_age` seconds."""
    ended: dict[str, Any] | None = await stream_hub().shared(
        f"ended:{session_id}", max_age=max_age, check=lambda: run_in_web_thread(_ended_status, session_id)
    )
    return ended


async def _catch_up(subscription: Subscription, key: str) -> list[tuple[str, dict[str, str]]]:
    """Entries of `key` after the subscription's cursor, read from Redis by this stream (at the
    start, and after the hub could not hold them): up to 200 at a time, until none are left."""
    entries: list[tuple[str, dict[str, str]]] = []
    while True:
        reply: Any = await stream_hub().commands.xread({key: subscription.cursors[key]}, count=200)
        batch = reply[0][1] if reply else []
        for entry_id, fields in batch:
            if subscription.accept(key, entry_id):
                entries.append((entry_id, fields))
        if len(batch) < 200:
            return entries


async def session_event_stream(
    *, session_id: str, account_id: int, slot: str, after: str, ended: bool
) -> AsyncIterator[bytes]:
    """The session's events from `after` on, then live ones, until it has ended (`ended`: it had
    when the stream was asked for; then only what is kept is sent)."""
    key = events_key(session_id)
    keepalive = float(settings.STREAM_KEEPALIVE_SECONDS)
    hub = stream_hub()
    subscription: Subscription | None = None
    unavailable = sse(
        event="error",
        data={"code": "service_unavailable", "detail": "The event stream is briefly unavailable."},
    )
    try:
        yield b"retry: 2000\n\n"
        try:
            # What is kept first (read by this stream), then live events from the hub; the hub's
            # cursor for the key starts where this catch-up ended.
            reader = Subscription({key: after}, lossy=())
            kept = await _catch_up(reader, key)
            if not ended:
                subscription = await hub.subscribe({key: reader.cursors[key]})
        except RedisError as exc:
            logger.warning("event stream of %s: Redis failed (%r)", session_id, exc)
            yield unavailable
            return
        for entry_id, fields in kept:
            event, data = fields.get("event", "message"), fields.get("data", "{}")
            yield sse(event=event, data=data, event_id=entry_id)
            if _is_end(event, data):
                return
        if subscription is None:
            # Its end is no longer kept (or was never written): say it from the row.
            final = await run_in_web_thread(_ended_status, session_id)
            if final is not None:
                yield sse(event=STATUS, data=final)
            return
        while True:
            delivered = await subscription.wait(keepalive)
            if subscription.failed:
                logger.warning("event stream of %s: Redis failed", session_id)
                yield unavailable
                return
            if not delivered:
                # Nothing for a while: say so, keep the slot, and end if the session ended without
                # its event reaching Redis (written while Redis was away).
                yield b": keepalive\n\n"
                try:
                    await _slot_refresh(account_id, slot)
                except RedisError:
                    yield unavailable
                    return
                gone = await _ended(session_id, max_age=keepalive / 2)
                if gone is not None:
                    yield sse(event=STATUS, data=gone)
                    return
                continue
            entries = [(entry_id, fields) for _, entry_id, fields in subscription.take()]
            if subscription.overrun:
                subscription.overrun.clear()
                try:
                    entries += await _catch_up(subscription, key)
                except RedisError:
                    yield unavailable
                    return
            for entry_id, fields in entries:
                event, data = fields.get("event", "message"), fields.get("data", "{}")
                yield sse(event=event, data=data, event_id=entry_id)
                if _is_end(event, data):
                    return
    finally:
        if subscription is not None:
            hub.unsubscribe(subscription)
        await _slot_release(account_id, slot)


SCREENCAST_HEARTBEAT_SECONDS = 30  # Tzafon's contract: a `: heartbeat` comment every 30 s
_WATCH_REFRESH_SECONDS = 3.0
_END_CHECK_SECONDS = 5.0


def _frame_event(fields: dict[str, Any]) -> bytes:
    """The SSE bytes of a frame, built once per frame: the hub hands the same entry to every
    viewer of the session (the image is already base64, JSON-safe; re-encoding it costs for
    nothing)."""
    built = fields.get("_sse")
    if built is None:
        image = fields.get("image_data", "")
        metadata = fields.get("metadata", "{}")
        built = b'data: {"image_data":"' + image.encode() + b'","metadata":' + metadata.encode() + b"}\n\n"
        fields["_sse"] = built
    return built  # type: ignore[no-any-return]  # bytes, set just above or by another viewer


async def _latest_id(client: Any, key: str) -> tuple[str, dict[str, str] | None]:
    latest = await client.xrevrange(key, count=1)
    return (latest[0][0], latest[0][1]) if latest else ("0-0", None)


async def session_screencast_stream(
    *, session_id: str, account_id: int, slot: str, watcher: str, until: float | None = None
) -> AsyncIterator[bytes]:
    """Frames of the session's page as its host's caster sends them (the latest one first), a
    heartbeat every 30 s, until the session ends (its `terminated` event, or its row)."""
    hub = stream_hub()
    client = hub.commands
    frames, events = frames_key(session_id), events_key(session_id)
    loop_time = time.monotonic
    subscription: Subscription | None = None
    try:
        yield b": heartbeat\n\n"
        frame_cursor, latest = await _latest_id(client, frames)
        if latest is not None:
            yield _frame_event(latest)
        event_cursor, last_event = await _latest_id(client, events)
        if last_event is not None and _is_end(last_event.get("event", ""), last_event.get("data", "")):
            return
        subscription = await hub.subscribe({frames: frame_cursor, events: event_cursor}, lossy=[frames])
        beat = refreshed = checked = loop_time()
        while True:
            await subscription.wait(1.0)
            if subscription.failed:
                logger.warning("screencast of %s: Redis failed", session_id)
                yield sse(
                    event="error",
                    data={"code": "service_unavailable", "detail": "The stream is briefly unavailable."},
                )
                return
            entries = subscription.take()
            if events in subscription.overrun:
                subscription.overrun.clear()
                entries += [(events, i, f) for i, f in await _catch_up(subscription, events)]
            for key, _entry_id, fields in entries:
                if key == frames:
                    yield _frame_event(fields)
                elif _is_end(fields.get("event", ""), fields.get("data", "")):
                    return
            now = loop_time()
            if until is not None and time.time() >= until:
                return  # a live viewer's link expired
            if now - beat >= SCREENCAST_HEARTBEAT_SECONDS:
                beat = now
                yield b": heartbeat\n\n"
            if now - refreshed >= _WATCH_REFRESH_SECONDS:
                refreshed = now
                pipe = client.pipeline(transaction=False)
                pipe.zadd(watchers_key(session_id), {watcher: time.time()})
                pipe.expire(watchers_key(session_id), WATCHER_TTL_SECONDS * 3)
                await pipe.execute()
                await _slot_refresh(account_id, slot)
            if now - checked >= _END_CHECK_SECONDS:
                checked = now
                if await _ended(session_id, max_age=_END_CHECK_SECONDS / 2) is not None:
                    return
    except RedisError as exc:
        logger.warning("screencast of %s: Redis failed (%r)", session_id, exc)
        yield sse(
            event="error",
            data={"code": "service_unavailable", "detail": "The stream is briefly unavailable."},
        )
    finally:
        if subscription is not None:
            hub.unsubscribe(subscription)
        with contextlib.suppress(RedisError):
            await client.zrem(watchers_key(session_id), watcher)
        await _slot_release(account_id, slot)
