"""This worker host in the fleet: its heartbeat, and its warm pool kept full.

The lifecycle worker of each host (the one consuming `host.<WORKER_HOST>`) runs a heartbeat
thread in its main process: a pool child busy with browser starts never delays it, so a host is
declared dead (sessions/browser_state.py, after HOST_DEAD_AFTER_SECONDS) only when it really stopped.
Each beat also asks for a pool refill when a pool (one per flavour) lacks browsers. On a warm shutdown the
host's pool browsers are stopped; its sessions' browsers stay up for the next worker.
"""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import connection
from django.db.models import Count

from sessions import dispatch, placement
from sessions.dispatch import host_queue
from sessions.models import WarmBrowser
from workers import services

logger = logging.getLogger(__name__)

_stopping = threading.Event()


def host_beat() -> None:
    """One heartbeat; and a refill request when the pool lacks browsers (the refill re-checks)."""
    host = settings.WORKER_HOST
    sizes = services.pool_sizes()
    placement.host_heartbeat(name=host, capacity=settings.BROWSERS_PER_HOST, pool_sizes=sizes)
    if not any(sizes.values()):
        return
    pooled = dict(
        WarmBrowser.objects.filter(host=host)
        .values_list("flavour")
        .annotate(n=Count("pk"))
        .values_list("flavour", "n")
    )
    if any(pooled.get(flavour, 0) < size for flavour, size in sizes.items()):
        dispatch.pool_refill(host, expires=settings.HOST_HEARTBEAT_SECONDS)


def _beat_forever() -> None:
    while not _stopping.wait(settings.HOST_HEARTBEAT_SECONDS):
        try:
            host_beat()
        except Exception:
            logger.exception("heartbeat of %s failed", settings.WORKER_HOST)
        finally:
            connection.close()  # this thread's own; not held between beats


def _is_host_worker(sender: object) -> bool:
    consumer = getattr(sender, "task_consumer", None)
    queues = {q.name for q in getattr(consumer, "queues", [])}
    return host_queue(settings.WORKER_HOST) in queues


@worker_ready.connect
def _start_heartbeat(sender: object, **_: object) -> None:
    if not _is_host_worker(sender):
        return
    # The first beat before the worker says it is ready: creates may be placed here at once.
    host_beat()
    connection.close()
    threading.Thread(target=_beat_forever, name="host-heartbeat", daemon=True).start()
    logger.info("worker host %s: heartbeat every %ss", settings.WORKER_HOST, settings.HOST_HEARTBEAT_SECONDS)


@worker_shutdown.connect
def _stop_pool(**_: object) -> None:
    if _heartbeat_running() and not _stopping.is_set():
        _stopping.set()
        try:
            services.pool_forget(host=settings.WORKER_HOST)
        except Exception:
            logger.exception("could not stop the pool browsers of %s", settings.WORKER_HOST)
        finally:
            connection.close()


def _heartbeat_running() -> bool:
    return any(t.name == "host-heartbeat" for t in threading.enumerate())
