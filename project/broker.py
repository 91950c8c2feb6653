"""A guard for kombu's Redis transport, applied once when the Celery app is created (and one
client per channel instead of one per command, at the end).

kombu 5.7 (like every release since 3.0, celery/kombu#582) kills the worker when Redis goes
away while the worker holds unacknowledged messages (acks are late here, so it nearly always
does): closing the lost connection's channel restores those messages through a client built from
the connection, which is already gone; and a task that finishes after the reconnect acknowledges
its message on that dead channel. Either raises an AttributeError or a ConnectionError that
escapes Celery's connection-error handling as "Unrecoverable error", and the worker exits.

On a channel whose connection is gone there is nothing left to acknowledge or restore: the
message is still in Redis's unacked index (if Redis kept it) and comes back after the visibility
timeout, which every task here tolerates (each is safe to run twice); the actions it carried are
settled sooner by the lease reconcile. So these calls become no-ops there, with a warning.
tests/faults/test_faults.py restarts a Redis of its own under a busy worker to check it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)


def _connection_gone(qos: Any) -> bool:
    transport = getattr(qos.channel, "connection", None)
    return transport is None or transport.client is None


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _connection_gone(self):
            logger.warning("broker connection gone: %s skipped, left for redelivery", method.__name__)
            if method.__name__ == "restore_unacked":
                self._delivered.clear()  # what kombu's restore would have done on success
            return None
        try:
            return method(self, *args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            logger.warning(
                "broker connection lost: %s skipped (%s), left for redelivery", method.__name__, exc
            )
            return None

    guarded._browserfleet_guard = True  # type: ignore[attr-defined]
    return guarded


def _reused_client(create: Callable[..., Any]) -> Callable[..., Any]:
    """kombu builds a new redis.Redis object for every command it sends outside its consumer
    (each publish: `conn_or_acquire()` -> `_create_client()`), and a redis.Redis object fills a
    table of ~170 response callbacks when it is made: ~150 us of CPU of the ~720 us a
    `send_task` costs here (docs/benchmarks.md, "The broker hop"). The client holds no state
    of its own beyond its connection pool (thread-safe; each command borrows a connection), so
    one per channel and pool does the same work; a new pool (after a reconnect) gets a new one."""

    @functools.wraps(create)
    def create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:
            return create(self, asynchronous=True)
        pool = self.pool
        client = self.__dict__.get("_browserfleet_client")
        if client is None or client.connection_pool is not pool:
            client = create(self, asynchronous=False)
            self.__dict__["_browserfleet_client"] = client
        return client

    create_client._browserfleet_guard = True  # type: ignore[attr-defined]
    return create_client


def patch_kombu_redis_transport() -> None:
    channel = kombu_redis.Channel
    create = getattr(channel, "_create_client")  # noqa: B009  (private: not in kombu's stubs)
    if not getattr(create, "_browserfleet_guard", False):
        setattr(channel, "_create_client", _reused_client(create))  # noqa: B010
    qos = kombu_redis.QoS
    for name in ("ack", "reject", "restore_unacked"):
        method = getattr(qos, name)
        if not getattr(method, "_browserfleet_guard", False):
            setattr(qos, name, _guarded(method))
