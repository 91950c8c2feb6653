"""Worker heartbeats in Redis: each Celery worker writes its hostname and the time, every few
seconds, into one hash; /readyz and the operator dashboard read it.

Written by a worker bootstep on the worker's own timer (added in project/celery.py), not by a
task: a worker whose pool is saturated by long browser starts still beats, and no queue carries
it. Celery's own event heartbeats need gossip/events, which the service runs without.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import redis
from celery import bootsteps
from django.conf import settings

from project.redis import get_redis

logger = logging.getLogger(__name__)

HEARTBEATS_KEY = "bf:workers:heartbeat"
# Entries of workers that stopped without saying so are dropped after a day.
_FORGET_AFTER_SECONDS = 86400


def heartbeat_write(hostname: str, *, client: redis.Redis | None = None, now: float | None = None) -> None:
    now = time.time() if now is None else now
    pipe = (client or get_redis()).pipeline(transaction=False)
    pipe.hset(HEARTBEATS_KEY, hostname, f"{now:.3f}")
    pipe.expire(HEARTBEATS_KEY, _FORGET_AFTER_SECONDS)
    pipe.execute()


def heartbeat_remove(hostname: str, *, client: redis.Redis | None = None) -> None:
    (client or get_redis()).hdel(HEARTBEATS_KEY, hostname)


def heartbeats_read(*, client: redis.Redis | None = None, now: float | None = None) -> dict[str, float]:
    """Seconds since each known worker's last heartbeat, newest first."""
    now = time.time() if now is None else now
    raw = (client or get_redis()).hgetall(HEARTBEATS_KEY)
    ages = {}
    for name, value in raw.items():
        age = max(0.0, now - float(value))
        if age < _FORGET_AFTER_SECONDS:
            ages[name.decode() if isinstance(name, bytes) else name] = age
    return dict(sorted(ages.items(), key=lambda item: item[1]))


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Beats on the worker's timer thread; a clean shutdown removes the worker's entry."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None

    def _beat(self, hostname: str) -> None:
        try:
            heartbeat_write(hostname)
        except redis.RedisError as exc:  # Redis down: the next beat tries again; readyz sees it
            logger.warning("worker heartbeat not written: %s", exc)

    def start(self, worker: Any) -> None:
        self._beat(worker.hostname)
        self.tref = worker.timer.call_repeatedly(
            float(settings.WORKER_HEARTBEAT_SECONDS), self._beat, (worker.hostname,), priority=10
        )

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        with contextlib.suppress(redis.RedisError):
            heartbeat_remove(worker.hostname)
