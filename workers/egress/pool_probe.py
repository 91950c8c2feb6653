"""Active health of the operator's proxy pool, shared by every filter process (issue 24).

Passive health (upstream.py `PoolHealth`) learns that a member is dead from a browser's connection
that failed on it, per filter process. This adds a probe: every PROXY_PROBE_SECONDS each filter
process tries every member of ADVANCED_PROXY_URLS (a TCP connection; with PROXY_PROBE_TARGET
`host:port`, a whole CONNECT tunnel to it, with the member's credentials) and writes what it saw
to the Redis hash `bf:proxy-pool-health` (`host:port` -> `{"up": bool, "at": epoch seconds,
"every": its probe interval}`).
Every filter process reads the hash as often (once a second when it does not probe itself,
PROXY_PROBE_SECONDS=0), so a member that one of them found dead is skipped by all of them before a
browser's connection hits it, and comes back as soon as a probe finds it answering again. A
record older than STALE_PROBES of its prober's intervals (5 s at least) counts for nothing (its
prober is gone): passive health alone then. Redis unreachable: each process goes by its own
probes. Credentials never appear in a log line (members are named by host:port).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterable

import redis

from project.proxy_pool import POOL_HEALTH_KEY as HEALTH_KEY
from workers.egress.upstream import PoolHealth, ProxyFailed, Upstream, open_tunnel

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 3.0
STALE_PROBES = 3
READ_ONLY_SECONDS = 1.0


def pool_members(raw: str) -> list[Upstream]:
    """The members of ADVANCED_PROXY_URLS (`[tag=]scheme://[user:pass@]host:port`, comma-separated);
    a malformed item is skipped with a warning naming its position only."""
    members = []
    for index, item in enumerate((part.strip() for part in raw.split(",")), start=1):
        if not item:
            continue
        url = item.split("=", 1)[1] if "=" in item.split("://", 1)[0] else item
        try:
            upstream = Upstream.parse(url)
        except ValueError:
            logger.warning("ADVANCED_PROXY_URLS item %d is not a proxy URL: not probed", index)
            continue
        members.append(upstream)
    return members


def member_key(member: Upstream) -> str:
    return f"{member.host}:{member.port}"


def _target(raw: str) -> tuple[str, int] | None:
    host, _, port = raw.strip().rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


class PoolProbe:
    def __init__(
        self,
        health: PoolHealth,
        members: Iterable[Upstream],
        *,
        redis_url: str = "",
        interval: float = 5.0,
        target: tuple[str, int] | None = None,
    ) -> None:
        self.health = health
        self.members = list(members)
        self.interval = interval
        self.target = target
        self._redis = (
            redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) if redis_url else None
        )
        self._task: asyncio.Task[None] | None = None
        self._down: set[str] = set()

    @classmethod
    def from_env(cls, health: PoolHealth) -> PoolProbe | None:
        members = pool_members(os.environ.get("ADVANCED_PROXY_URLS", ""))
        if not members:
            return None
        return cls(
            health,
            members,
            redis_url=os.environ.get("REDIS_URL", ""),
            interval=float(os.environ.get("PROXY_PROBE_SECONDS") or 5),
            target=_target(os.environ.get("PROXY_PROBE_TARGET", "")),
        )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a probe round must never end the loop
                logger.exception("proxy pool probe failed")
            await asyncio.sleep(self.interval if self.interval > 0 else READ_ONLY_SECONDS)

    async def tick(self) -> dict[str, bool]:
        """One round: probe (unless read-only), publish, read everyone's, apply. Returns the
        members' state as applied (True: up)."""
        seen: dict[str, bool] = {}
        if self.interval > 0:
            answers = await asyncio.gather(*(self.probe(member) for member in self.members))
            seen = {member_key(m): up for m, up in zip(self.members, answers, strict=True)}
        loop = asyncio.get_running_loop()
        shared: dict[str, bool] | None = None
        if self._redis is not None:
            try:
                shared = await loop.run_in_executor(None, self._exchange, seen)
            except redis.RedisError as exc:
                logger.warning("proxy pool health not shared: %s", exc)
        state = {**(shared or {}), **seen}
        down = {key for key, up in state.items() if not up}
        for key in sorted(down - self._down):
            logger.warning("pool member %s is out of rotation: a probe found it not answering", key)
        for key in sorted(self._down - down):
            logger.warning("pool member %s is back in rotation", key)
        self._down = down
        self.health.shared(down=down, up={key for key, up in state.items() if up})
        return state

    async def probe(self, member: Upstream) -> bool:
        try:
            if self.target is not None:
                _, writer = await open_tunnel(member, member.host, self.target, timeout=PROBE_TIMEOUT_SECONDS)
            else:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(member.host, member.port), PROBE_TIMEOUT_SECONDS
                )
        except (ProxyFailed, OSError, TimeoutError):
            return False
        writer.close()
        return True

    def _exchange(self, seen: dict[str, bool]) -> dict[str, bool]:
        assert self._redis is not None
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        if seen:
            pipe.hset(
                HEALTH_KEY, mapping={key: json.dumps({"up": up, "at": now}) for key, up in seen.items()}
            )
        pipe.hgetall(HEALTH_KEY)
        everything = pipe.execute()[-1]
        state: dict[str, bool] = {}
        known = {member_key(m) for m in self.members}
        for raw_key, raw_value in everything.items():
            key = raw_key.decode()
            try:
                record = json.loads(raw_value)
                # Stale after STALE_PROBES of its prober's intervals (5 s at least): its prober is gone.
                fresh = STALE_PROBES * max(float(record.get("every") or 0), 5.0)
                if key in known and now - float(record["at"]) <= fresh:
                    state[key] = bool(record["up"])
            except (ValueError, KeyError, TypeError):
                continue
        return state
