"""Bytes through metered upstreams (the operator's pool), reported per session to Redis.

The filter counts every chunk a splice carries (upstream.py); for an upstream whose route names a
`meter` (a session, or a job browser), the counts are added up here and written to the Redis hash
`bf:proxy-meter:<meter>` at most once a second, and at once when a tunnel opens or closes. Each
filter process writes fields of its own: `bytes:<instance>` (its running total for that meter
since it started, written whole, never incremented) and `open:<instance>` (its tunnels of that
meter still open); a reader adds the fields up (`meter_read`). The worker reads the hash at the
browser's stop, once every `open` is 0 (sessions/proxy_billing.py charges it). Redis calls run in
a thread: the event loop never waits for them. A failed write is written again next time.

**A Redis that loses its data** (a restart without persistence): the process keeps its running
totals in memory (for RETAIN_SECONDS after a meter's last byte) and a marker key of its own in
Redis; when the marker is gone it writes every total it keeps again, so the bytes counted but not
yet charged come back within a second of Redis answering. What is lost for good: the bytes of a
filter process that ended while Redis was without its data (its totals lived in its memory
only), and the day's per-member counts of the dashboard (increments).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis

from project.proxy_pool import POOL_BYTES_TTL_SECONDS, pool_bytes_key

logger = logging.getLogger(__name__)

KEY_PREFIX = "bf:proxy-meter:"
# A meter's counts outlive its session long enough for a late charge (the billing run).
KEY_TTL_SECONDS = 7 * 24 * 3600
FLUSH_SECONDS = 1.0
# A meter's running total is kept in the process's memory this long after its last byte (with no
# tunnel open), to be written again if Redis loses it: longer than the reconcile's charging window
# for ended sessions and job browsers (1 h).
RETAIN_SECONDS = 2 * 3600
ALIVE_PREFIX = "bf:proxy-meter-alive:"


def meter_key(meter: str) -> str:
    return f"{KEY_PREFIX}{meter}"


def meter_read(counts: Mapping[Any, Any] | None) -> tuple[int, int]:
    """(bytes, open tunnels) of a meter's hash (HGETALL's answer): the sum over every filter
    process's fields (and the single `bytes`/`open` fields older filters wrote)."""
    total = open_now = 0
    for field_name, value in (counts or {}).items():
        name = (field_name.decode() if isinstance(field_name, bytes) else str(field_name)).split(":", 1)[0]
        with contextlib.suppress(ValueError, TypeError):
            if name == "bytes":
                total += int(value)
            elif name == "open":
                open_now += int(value)
    return total, open_now


ERRORS_PREFIX = "bf:proxy-errors:"
# Seconds the filter waits for a failure's report to be written before it fails the connection.
REPORT_TIMEOUT_SECONDS = 2.0


def proxy_errors_key(report: str) -> str:
    """How many connections of the browser `report` (a job browser's id) an upstream proxy failed:
    the job runner reads it before and after a page (workers/job_runner.py)."""
    return f"{ERRORS_PREFIX}{report}"


class RedisMeter:
    def __init__(self, url: str, *, instance: str = "") -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.instance = instance or uuid.uuid4().hex[:12]
        self._totals: Counter[str] = Counter()  # bytes since this process started, per meter
        self._open: Counter[str] = Counter()
        self._last: dict[str, float] = {}  # meter -> when it last moved (monotonic)
        # Bytes by pool member, for the operator's dashboard (project/proxy_pool.py).
        self._members: Counter[str] = Counter()
        self._dirty: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, meter: str, size: int, *, member: str = "") -> None:
        self._totals[meter] += size
        self._last[meter] = time.monotonic()
        self._dirty.add(meter)
        if member:
            self._members[member] += size

    def opened(self, meter: str) -> None:
        self._open[meter] += 1
        self._touch(meter)

    def closed(self, meter: str) -> None:
        self._open[meter] -= 1
        self._touch(meter)

    def _touch(self, meter: str) -> None:
        self._last[meter] = time.monotonic()
        self._dirty.add(meter)
        if self._wake is not None:
            self._wake.set()

    async def failed(self, report: str) -> None:
        """Count a proxy failure under `report`, written before the browser hears of the failure
        (the caller awaits this), so a runner that sees its page fail then sees the count too.
        A Redis that does not answer in REPORT_TIMEOUT_SECONDS loses the report (logged): the page
        then fails as a connection error."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(None, self._count_failure, report), REPORT_TIMEOUT_SECONDS
            )
        except (redis.RedisError, TimeoutError) as exc:
            logger.warning("proxy failure not reported: %s", exc)

    def _count_failure(self, report: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(proxy_errors_key(report))
        pipe.expire(proxy_errors_key(report), KEY_TTL_SECONDS)
        pipe.execute()

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
            self._forget_idle()
            if not self._totals and not self._dirty:
                continue
            dirty, self._dirty = self._dirty, set()
            members, self._members = self._members, Counter()
            # Taken here, on the loop: the thread never reads what the loop is changing.
            kept = {meter: (total, max(0, self._open[meter])) for meter, total in self._totals.items()}
            for meter in dirty - kept.keys():
                kept[meter] = (0, max(0, self._open[meter]))
            try:
                await loop.run_in_executor(None, self.flush, kept, dirty, members)
            except redis.RedisError as exc:
                logger.warning("proxy byte counts not written (written again next time): %s", exc)
                self._dirty |= dirty
                self._members.update(members)

    def _forget_idle(self) -> None:
        cutoff = time.monotonic() - RETAIN_SECONDS
        for meter, last in list(self._last.items()):
            if last < cutoff and self._open[meter] <= 0:
                del self._last[meter]
                self._totals.pop(meter, None)
                self._open.pop(meter, None)

    def flush(
        self, kept: dict[str, tuple[int, int]], dirty: set[str], members: Counter[str] | None = None
    ) -> int:
        """Write the `dirty` meters' (total, open), or all `kept` when Redis forgot this process
        (its marker is gone: its first write, or a restart that lost the data); returns how many
        meters were written."""
        alive = f"{ALIVE_PREFIX}{self.instance}"
        if kept and not self._redis.exists(alive):
            if kept.keys() - dirty:
                logger.warning(
                    "Redis did not know this filter's proxy byte counts (restarted?): writing all %d again",
                    len(kept),
                )
            dirty = dirty | kept.keys()
        pipe = self._redis.pipeline(transaction=True)
        for meter in dirty:
            total, open_now = kept[meter]
            key = meter_key(meter)
            pipe.hset(key, mapping={f"bytes:{self.instance}": total, f"open:{self.instance}": open_now})
            pipe.expire(key, KEY_TTL_SECONDS)
        if members:
            day = pool_bytes_key(datetime.now(UTC).date())
            for member, size in members.items():
                pipe.hincrby(day, member, size)
            pipe.expire(day, POOL_BYTES_TTL_SECONDS)
        pipe.set(alive, 1, ex=KEY_TTL_SECONDS)
        pipe.execute()
        return len(dirty)
