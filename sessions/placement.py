"""Where new sessions go: the worker hosts' heartbeats and capacity, placement, the warm pool rows.

Each host that runs local browsers heartbeats a `WorkerHost` row (workers/host_heartbeat.py);
a host that stopped is reaped by sessions/browser_state.py (its sessions end as crashed). A create
claims a warm browser of its flavour on a live host if there is one (`FOR UPDATE SKIP LOCKED`, so
no two creates get the same one, and the row is deleted: a pool browser serves one session; a pool
per flavour, sized by BROWSER_POOL_SIZE and BROWSER_POOL_SIZE_HEADLESS_SHELL), else takes the
least loaded live host with room, under that host's row lock so that two creates never both take
its last slot; with no room anywhere, 503 `no_capacity`. Pool browsers count toward a host's
capacity (both flavours alike), not toward any account's concurrency, and are never billed (they
are not sessions).

Lock order: account, then warm browser, then host, then balance (session_create); the refill
takes the host row alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from project.exceptions import ServiceUnavailable
from sessions.location import CHROMIUM, HEADLESS_SHELL, BrowserLocation
from sessions.models import (
    LIVE_STATUSES,
    BrowserSession,
    WarmBrowser,
    WarmBrowserState,
    WorkerHost,
)

# How long a create that found no room is told to wait: about one browser's lifetime end.
NO_CAPACITY_RETRY_AFTER_SECONDS = 5


class _HostFull(Exception):
    pass


@dataclass(frozen=True)
class Placement:
    """Where a new session's browser comes from: a claimed warm browser, or a cold start on
    `host` (blank: any lifecycle worker, when no host heartbeats, e.g. the grid backend)."""

    host: str = ""
    warm: WarmBrowser | None = None


def alive_since(now: datetime) -> datetime:
    """Hosts whose last heartbeat is older than this are dead."""
    return now - timedelta(seconds=settings.HOST_DEAD_AFTER_SECONDS)


def host_heartbeat(*, name: str, capacity: int, pool_sizes: dict[str, int]) -> None:
    """Record that `name` is alive (an upsert: the row may have been forgotten meanwhile).
    `pool_sizes`: its warm pool size per flavour."""
    now = timezone.now()
    sizes = {
        "pool_size": pool_sizes.get(CHROMIUM, 0),
        "pool_size_headless_shell": pool_sizes.get(HEADLESS_SHELL, 0),
    }
    updated = WorkerHost.objects.filter(pk=name).update(heartbeat_at=now, capacity=capacity, **sizes)
    if not updated:
        WorkerHost.objects.bulk_create(
            [WorkerHost(name=name, heartbeat_at=now, started_at=now, capacity=capacity, **sizes)],
            update_conflicts=True,
            unique_fields=["name"],
            update_fields=["heartbeat_at", "capacity", *sizes],
        )


def hosts_alive(*, now: datetime | None = None) -> list[WorkerHost]:
    return list(WorkerHost.objects.filter(heartbeat_at__gte=alive_since(now or timezone.now())))


def host_loads(names: list[str]) -> dict[str, int]:
    """Browsers each host runs now: live local sessions placed there and its pool browsers."""
    loads = dict.fromkeys(names, 0)
    for host, count in (
        BrowserSession.objects.filter(status__in=LIVE_STATUSES, host__in=names)
        .exclude(backend="grid")
        .values_list("host")
        .annotate(n=Count("pk"))
    ):
        loads[host] += count
    for host, count in WarmBrowser.objects.filter(host__in=names).values_list("host").annotate(n=Count("pk")):
        loads[host] += count
    return loads


def placement_choose(*, now: datetime, flavour: str = CHROMIUM) -> Placement:
    """Inside the create's transaction: claim a warm browser of `flavour`, or reserve room on a host.

    503 no_capacity when every live host is full.
    """
    if settings.BROWSER_BACKEND != "local":
        return Placement()
    alive = hosts_alive(now=now)
    if not alive:
        return Placement()  # no host heartbeats yet: any lifecycle worker starts it, as before
    names = [h.name for h in alive]
    warm = (
        WarmBrowser.objects.select_for_update(skip_locked=True)
        .filter(state=WarmBrowserState.READY, host__in=names, flavour=flavour)
        .order_by("created_at")
        .first()
    )
    if warm is not None:
        # Deleted in the create's transaction: if the create rolls back, the browser stays pooled.
        WarmBrowser.objects.filter(pk=warm.pk).delete()
        return Placement(host=warm.host, warm=warm)
    loads = host_loads(names)
    capacity = {h.name: h.capacity for h in alive}
    for name in sorted(names, key=lambda n: (loads[n] / max(1, capacity[n]), loads[n])):
        try:
            # Re-count under the host's lock: a create that took a slot meanwhile has committed.
            # In a savepoint, so that a full host's lock is let go before the next is taken (two
            # creates trying two full hosts in opposite orders would deadlock).
            with transaction.atomic():
                host = WorkerHost.objects.select_for_update().filter(pk=name).first()
                if host is None or host_loads([name])[name] >= host.capacity:
                    raise _HostFull
                return Placement(host=name)
        except _HostFull:
            continue
    raise ServiceUnavailable(
        f"Every worker host is at its browser capacity ({sum(capacity.values())} browsers on "
        f"{len(names)} hosts); try again shortly.",
        code="no_capacity",
        retry_after=NO_CAPACITY_RETRY_AFTER_SECONDS,
    )


def warm_browsers_reserve(*, host: str, pool_size: int, capacity: int, flavour: str = CHROMIUM) -> list[str]:
    """Rows for the pool browsers of `flavour` that `host` should start now (missing ones, within
    its capacity, which browsers of both flavours share)."""
    now = timezone.now()
    with transaction.atomic():
        if WorkerHost.objects.select_for_update().filter(pk=host).first() is None:
            return []  # not heartbeating (yet): nothing may be placed here
        pooled = WarmBrowser.objects.filter(host=host, flavour=flavour).count()
        room = capacity - host_loads([host])[host]
        wanted = max(0, min(pool_size - pooled, room))
        rows = [WarmBrowser(host=host, flavour=flavour, created_at=now) for _ in range(wanted)]
        WarmBrowser.objects.bulk_create(rows)
    return [row.pk for row in rows]


def warm_browser_ready(*, pool_id: str, location: BrowserLocation) -> bool:
    """starting -> ready; False when the row is gone (forgotten): the caller stops the browser."""
    return bool(
        WarmBrowser.objects.filter(pk=pool_id, state=WarmBrowserState.STARTING).update(
            state=WarmBrowserState.READY, ready_at=timezone.now(), **location.columns()
        )
    )


def warm_browsers_take(
    *, host: str, older_than: datetime | None = None, ids: list[str] | None = None
) -> list[WarmBrowser]:
    """Take pool browsers out of the pool (to stop them): ready ones past an age, or given ids.

    Locked rows (a create claiming them right now) are skipped; what is returned is deleted.
    """
    with transaction.atomic():
        rows = WarmBrowser.objects.select_for_update(skip_locked=True).filter(host=host)
        if older_than is not None:
            rows = rows.filter(state=WarmBrowserState.READY, created_at__lt=older_than)
        if ids is not None:
            rows = rows.filter(pk__in=ids)
        taken = list(rows)
        WarmBrowser.objects.filter(pk__in=[w.pk for w in taken]).delete()
    return taken


def warm_browsers_of(*, host: str) -> list[WarmBrowser]:
    return list(WarmBrowser.objects.filter(host=host))
