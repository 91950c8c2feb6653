"""Bytes through metered upstreams (the operator's pool), reported per session to Redis.

The filter counts every chunk a splice carries (upstream.py); for an upstream whose route names a
`meter` (the session), the counts are added up here and written to the Redis hash
`bf:proxy-meter:<meter>` (`bytes`: the total so far, `open`: its tunnels still open) at most once
a second, and at once when a tunnel opens or closes. The worker reads the hash at the browser's
stop, once `open` is 0 (sessions/proxy_billing.py charges it). Redis calls run in a thread: the
event loop never waits for them. A failed write keeps the counts for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

import redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "bf:proxy-meter:"
# A meter's counts outlive its session long enough for a late charge (the billing run).
KEY_TTL_SECONDS = 7 * 24 * 3600
FLUSH_SECONDS = 1.0


def meter_key(meter: str) -> str:
    return f"{KEY_PREFIX}{meter}"


class RedisMeter:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._pending: Counter[str] = Counter()
        self._open: Counter[str] = Counter()
        self._dirty: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, meter: str, size: int) -> None:
        self._pending[meter] += size
        self._dirty.add(meter)

    def opened(self, meter: str) -> None:
        self._open[meter] += 1
        self._touch(meter)

    def closed(self, meter: str) -> None:
        self._open[meter] -= 1
        self._touch(meter)

    def _touch(self, meter: str) -> None:
        self._dirty.add(meter)
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            if not self._dirty:
                continue
            dirty, self._dirty = self._dirty, set()
            batch = {meter: (self._pending.pop(meter, 0), max(0, self._open[meter])) for meter in dirty}
            for meter in dirty:
                if self._open[meter] <= 0:
                    self._open.pop(meter, None)
            try:
                await loop.run_in_executor(None, self._write, batch)
            except redis.RedisError as exc:
                logger.warning("proxy byte counts not written (kept for the next try): %s", exc)
                for meter, (size, _) in batch.items():
                    self._pending[meter] += size
                    self._dirty.add(meter)

    def _write(self, batch: dict[str, tuple[int, int]]) -> None:
        pipe = self._redis.pipeline(transaction=True)
        for meter, (size, open_now) in batch.items():
            key = meter_key(meter)
            pipe.hincrby(key, "bytes", size)
            pipe.hset(key, "open", open_now)
            pipe.expire(key, KEY_TTL_SECONDS)
        pipe.execute()
