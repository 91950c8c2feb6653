"""A guard for kombu's Redis transport, applied once when the Celery app is created.

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


def patch_kombu_redis_transport() -> None:
    qos = kombu_redis.QoS
    for name in ("ack", "reject", "restore_unacked"):
        method = getattr(qos, name)
        if not getattr(method, "_browserfleet_guard", False):
            setattr(qos, name, _guarded(method))
