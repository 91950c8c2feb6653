"""One Redis reader per web process for all its open streams (sessions/streams.py).

Every open stream of a process (events, screencast, the live viewer's feed) subscribes here to
the Redis streams it follows (`bf:events:<session>`, `bf:cast:frames:<session>`). One task per
event loop reads them all with one blocking XREAD on one connection (`bf-streams-reader:<pid>`)
and hands each entry to the subscriptions of its key, in memory: a hundred viewers of one
session cost one read of each frame, not a hundred, and one connection, not a hundred. The
streams' short commands (the first reads, slot and watcher refreshes) share a small bounded pool
(`bf-streams:<pid>`, `_COMMAND_CONNECTIONS`).

A new key joins the read at once: subscribing appends to this hub's own wake stream
(`bf:streams:wake:<uuid>`), which the blocking XREAD also reads, so it returns and reads again
with the new key.

Bounded: a subscription keeps at most `FRAMES_QUEUED` frames of a lossy key (a slow viewer
drops the oldest frames, never memory) and `EVENTS_QUEUED` entries of another key; past that it
is marked `overrun` and its stream catches up from Redis itself, from the last id it sent (events
are never dropped while Redis keeps them). A subscription also filters what it already has,
so a catch-up and the hub's deliveries may overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import redis.asyncio
from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

FRAMES_QUEUED = 4
EVENTS_QUEUED = 1000
_BLOCK_MS = 5000
_COMMAND_CONNECTIONS = 4
_WAKE_TTL_SECONDS = 3600
# After Redis failed, the reader waits this long before it reads again.
_RETRY_SECONDS = 1.0

Entry = tuple[str, dict[str, Any]]


def entry_id_after(entry_id: str, cursor: str) -> bool:
    """Whether Redis stream id `entry_id` comes after `cursor` ("0-0": everything does)."""
    a_ms, _, a_seq = entry_id.partition("-")
    b_ms, _, b_seq = cursor.partition("-")
    return (int(a_ms), int(a_seq or 0)) > (int(b_ms), int(b_seq or 0))


class Subscription:
    """What one open stream follows: per key, the entries the hub delivered that it has not taken."""

    def __init__(self, cursors: dict[str, str], lossy: Iterable[str]) -> None:
        self.cursors = dict(cursors)
        self.lossy = set(lossy)
        self.pending: dict[str, deque[Entry]] = {
            key: deque(maxlen=FRAMES_QUEUED if key in self.lossy else None) for key in cursors
        }
        # Keys whose entries the stream must read from Redis itself (at the start, and after the
        # hub had to drop entries it could not hold): non-lossy keys start there.
        self.overrun: set[str] = {key for key in cursors if key not in self.lossy}
        self.failed = False
        self.dropped = 0
        self._ready = asyncio.Event()

    def deliver(self, key: str, entries: list[Entry]) -> None:
        queue = self.pending[key]
        for entry in entries:
            if key in self.lossy:
                if len(queue) == queue.maxlen:
                    self.dropped += 1
                queue.append(entry)
            elif len(queue) >= EVENTS_QUEUED:
                self.overrun.add(key)
                queue.clear()
                break
            else:
                queue.append(entry)
        self._ready.set()

    def fail(self) -> None:
        self.failed = True
        self._ready.set()

    async def wait(self, timeout: float) -> bool:
        """Until something was delivered (True) or `timeout` seconds passed (False)."""
        if not self.failed and not self.overrun and not any(self.pending.values()):
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return False
        self._ready.clear()
        return True

    def accept(self, key: str, entry_id: str) -> bool:
        """Whether `entry_id` of `key` is new to this stream (then it becomes its cursor)."""
        if not entry_id_after(entry_id, self.cursors[key]):
            return False
        self.cursors[key] = entry_id
        return True

    def take(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The delivered entries not yet sent (key, id, fields), in order per key."""
        out = []
        for key, queue in self.pending.items():
            while queue:
                entry_id, fields = queue.popleft()
                if self.accept(key, entry_id):
                    out.append((key, entry_id, fields))
        return out


class StreamHub:
    def __init__(self) -> None:
        pid = os.getpid()
        self.reader = redis.asyncio.Redis.from_url(
            settings.REDIS_URL,
            decode_responses=True,
            single_connection_client=True,
            client_name=f"bf-streams-reader:{pid}",
            socket_timeout=_BLOCK_MS / 1000 + 15,
        )
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=_COMMAND_CONNECTIONS,
            timeout=30,
            decode_responses=True,
            client_name=f"bf-streams:{pid}",
            health_check_interval=30,
            socket_timeout=30,
        )
        self.commands = redis.asyncio.Redis(connection_pool=pool)
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._cursors: dict[str, str] = {}
        self._wake_key = f"bf:streams:wake:{uuid.uuid4().hex}"
        self._wake_cursor = "0-0"
        self._task: asyncio.Task[None] | None = None
        self._checks: dict[str, tuple[float, asyncio.Future[Any]]] = {}

    async def subscribe(self, cursors: dict[str, str], *, lossy: Iterable[str] = ()) -> Subscription:
        """Follow `cursors`' keys from those ids on (lossy keys: frames, of which only the
        latest matter)."""
        subscription = Subscription(cursors, lossy)
        new = False
        for key, cursor in cursors.items():
            self._subscriptions.setdefault(key, set()).add(subscription)
            if key not in self._cursors:
                self._cursors[key] = cursor
                new = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._read(), name="stream-hub")
        elif new:
            try:  # the reader is blocked on the old keys: have it read again
                await self.commands.xadd(self._wake_key, {"k": "1"}, maxlen=10, approximate=True)
                await self.commands.expire(self._wake_key, _WAKE_TTL_SECONDS)
            except RedisError:
                subscription.fail()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        for key in subscription.cursors:
            subscribers = self._subscriptions.get(key)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscriptions[key]
                    self._cursors.pop(key, None)

    async def _read(self) -> None:
        while self._subscriptions:
            streams: dict[Any, Any] = {self._wake_key: self._wake_cursor, **self._cursors}
            try:
                reply: Any = await self.reader.xread(streams, count=100, block=_BLOCK_MS)
            except RedisError as exc:
                logger.warning("stream hub: Redis failed (%r)", exc)
                self._fail_all()
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            except Exception:
                logger.exception("stream hub: the reader failed")
                self._fail_all()
                raise
            for key, entries in reply or []:
                if key == self._wake_key:
                    self._wake_cursor = entries[-1][0]
                    continue
                if key in self._cursors:
                    self._cursors[key] = entries[-1][0]
                for subscription in list(self._subscriptions.get(key, ())):
                    subscription.deliver(key, entries)
        # No await between the check above and here: a subscribe that comes after sees the task
        # done and starts another.

    def _fail_all(self) -> None:
        for subscribers in list(self._subscriptions.values()):
            for subscription in subscribers:
                subscription.fail()

    async def shared(self, name: str, *, max_age: float, check: Callable[[], Awaitable[Any]]) -> Any:
        """`check()`'s answer, shared by the streams that ask for `name` within `max_age` seconds
        (a hundred viewers of one session make one database check, not a hundred)."""
        now = time.monotonic()
        held = self._checks.get(name)
        failed = held is not None and held[1].done() and (held[1].cancelled() or held[1].exception())
        if held is None or failed or now - held[0] >= max_age:
            if len(self._checks) > 1000:
                self._checks = {k: v for k, v in self._checks.items() if now - v[0] < max_age}
            held = (now, asyncio.ensure_future(check()))
            self._checks[name] = held
        return await asyncio.shield(held[1])

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self.reader.aclose()
        await self.commands.aclose(close_connection_pool=True)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamHub] = weakref.WeakKeyDictionary()


def stream_hub() -> StreamHub:
    """The running event loop's hub (one per web process: uvicorn runs one loop)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = StreamHub()
    return hub
