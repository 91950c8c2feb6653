"""Worker-side session services: start, stop and reconcile real browsers.

The session rows change only through sessions/ (browser_state.py, services.py): these run the
browsers and report what happened.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from jobs.selectors import live_job_browser_ids, live_job_webdriver_ids
from sessions import dispatch, placement
from sessions.browser_state import (
    hosts_dead_reap,
    session_browser_ready,
    session_browser_released,
    session_browser_start_abandoned,
    session_browser_start_failed,
)
from sessions.models import (
    LIVE_STATUSES,
    WARM_BROWSER_ID_PREFIX,
    BrowserSession,
    EndedReason,
    SessionStatus,
    WarmBrowser,
    WarmBrowserState,
)
from sessions.services import session_terminate
from workers.browser import BrowserError, BrowserStartError, Display, egress, get_backend
from workers.browser.base import prepare_first_tab
from workers.browser.driver import forget
from workers.browser.local import LocalBackend

logger = logging.getLogger(__name__)


def session_browser_start(*, session_id: str) -> None:
    """Start the session's browser and mark it ready; safe to run twice.

    If the session ended while the browser was starting (DELETE, a create that gave up), the
    browser is stopped here, since no stop task will know about it.
    """
    session = BrowserSession.objects.filter(pk=session_id).first()
    if session is None or session.status != SessionStatus.STARTING:
        return
    backend = get_backend()
    display = Display(session.display_width, session.display_height, session.display_scale)
    try:
        handle = backend.start(session_id=session_id, display=display)
    except BrowserStartError as exc:
        logger.warning("session %s: browser start failed: %s", session_id, exc)
        session_browser_start_failed(session_id=session_id, error=str(exc))
        return
    if not session_browser_ready(session=session, location=handle):
        logger.info("session %s ended while its browser started; stopping it", session_id)
        backend.stop(handle, session_id=session_id)
        session_browser_start_abandoned(session_id=session_id)


def session_browser_stop(*, session_id: str) -> None:
    """Free an ended session's browser (processes, profile, Grid slot); safe to run twice."""
    session = BrowserSession.objects.filter(pk=session_id).first()
    if session is None or session.status != SessionStatus.TERMINATED or session.browser_released_at:
        return
    handle = session.location
    forget(handle)
    get_backend(session.backend or None).stop(handle, session_id=session_id)
    session_browser_released(session=session)


def session_browser_adopt(*, session_id: str) -> None:
    """Make the warm browser a create claimed the session's: apply its display, mark it ready.

    Runs on the browser's host (its actions worker). A warm browser that died in the pool is
    stopped and the session falls back to a cold start on the same host.
    """
    session = BrowserSession.objects.filter(pk=session_id).first()
    if session is None or session.status != SessionStatus.STARTING or not session.webdriver_session_id:
        return
    handle = session.location
    display = Display(session.display_width, session.display_height, session.display_scale)
    try:
        prepare_first_tab(handle.webdriver_url, handle.webdriver_session_id, display)
    except BrowserError as exc:
        logger.warning("session %s: its warm browser failed (%s); starting a new one", session_id, exc)
        get_backend(handle.backend).stop(handle, session_id=session_id)
        dispatch.browser_start(session_id, host=session.host)
        return
    if not session_browser_ready(session=session, location=handle):
        # Ended meanwhile: its row names this browser, so its stop task frees it.
        session_browser_start_abandoned(session_id=session_id)


def _warm_browsers_stop(backend: LocalBackend, taken: list[WarmBrowser]) -> None:
    for warm in taken:
        backend.stop(warm.location, session_id=warm.pk)


def pool_refill(*, host: str) -> int:
    """Recycle this host's pool browsers past BROWSER_POOL_MAX_AGE_SECONDS and start the ones it
    lacks (within BROWSERS_PER_HOST); return how many started."""
    if host != settings.WORKER_HOST or settings.BROWSER_BACKEND != "local":
        return 0
    backend = LocalBackend()
    old = timezone.now() - timedelta(seconds=settings.BROWSER_POOL_MAX_AGE_SECONDS)
    _warm_browsers_stop(backend, placement.warm_browsers_take(host=host, older_than=old))
    started = 0
    for pool_id in placement.warm_browsers_reserve(
        host=host, pool_size=settings.BROWSER_POOL_SIZE, capacity=settings.BROWSERS_PER_HOST
    ):
        try:
            handle = backend.start(session_id=pool_id, display=Display())
        except BrowserStartError as exc:
            logger.warning("pool browser %s did not start: %s", pool_id, exc)
            placement.warm_browsers_take(host=host, ids=[pool_id])
            continue
        if placement.warm_browser_ready(pool_id=pool_id, location=handle):
            started += 1
        else:
            backend.stop(handle, session_id=pool_id)  # forgotten while it started
    return started


def pool_forget(*, host: str) -> None:
    """This host's worker stops: stop its pool browsers (sessions' browsers stay up)."""
    backend = LocalBackend()
    _warm_browsers_stop(backend, placement.warm_browsers_take(host=host))
    # Pool browsers whose rows were forgotten meanwhile (never a claimed one: a live session
    # names its directory).
    backend.kill_orphans_of(_live_browser_names, prefix=WARM_BROWSER_ID_PREFIX)


def _live_browser_names() -> set[str]:
    """Ids in the profile paths of browsers that must live: live sessions (a claimed warm
    browser keeps its pool id in its paths), pool rows and batch jobs' browsers (`job-...`)."""
    names: set[str] = set()
    for session_id, profile_dir in BrowserSession.objects.filter(status__in=LIVE_STATUSES).values_list(
        "pk", "profile_dir"
    ):
        names.add(session_id)
        if profile_dir:
            names.add(Path(profile_dir).name)
    names.update(WarmBrowser.objects.values_list("pk", flat=True))
    names |= live_job_browser_ids()
    return names


def _end_if_gone(session_ids: list[str]) -> int:
    crashed = 0
    for session_id in session_ids:
        session = BrowserSession.objects.filter(pk=session_id).first()
        if session is None or session.status not in (SessionStatus.READY, SessionStatus.RUNNING):
            continue
        if not get_backend(session.backend).is_alive(session.location):
            logger.warning("session %s: browser is gone; ending it as crashed", session_id)
            crashed += session_terminate(
                session_id=session_id, reason=EndedReason.CRASHED, error="the browser exited"
            )
    return crashed


def host_reconcile(*, host: str) -> dict[str, int]:
    """On `host`: end its sessions whose browser is gone (crashed), replace dead pool browsers,
    kill browsers that belong to no live session or pool row, and top the pool up."""
    if host != settings.WORKER_HOST:
        return {}
    backend = LocalBackend()
    crashed = _end_if_gone(
        list(
            BrowserSession.objects.filter(status__in=LIVE_STATUSES, host=host, backend="local")
            .exclude(webdriver_session_id="")
            .values_list("pk", flat=True)
        )
    )
    stale_start = timezone.now() - timedelta(seconds=settings.BROWSER_START_TIMEOUT_SECONDS + 30)
    dead_pool = [
        w.pk
        for w in placement.warm_browsers_of(host=host)
        if (w.state == WarmBrowserState.READY and not backend.is_alive(w.location))
        or (w.state == WarmBrowserState.STARTING and w.created_at < stale_start)
    ]
    if dead_pool:
        logger.warning("pool browsers gone on %s, replacing them: %s", host, dead_pool)
        _warm_browsers_stop(backend, placement.warm_browsers_take(host=host, ids=dead_pool))
    killed = backend.kill_orphans_of(_live_browser_names)
    if killed:
        logger.warning("killed %d browsers that belonged to no live session: %s", len(killed), killed)
    if settings.BROWSER_POOL_SIZE:
        dispatch.pool_refill(host, expires=settings.RECONCILE_INTERVAL_SECONDS)
    # This host's egress filter (one per host, like its browsers).
    try:
        egress.ensure_ready()
        egress_down = 0
    except BrowserStartError as exc:
        # Running browsers cannot go around it (no direct route), but none can start: an operator
        # must know. Its supervisor (bin/dev serve, compose's restart policy) brings it back.
        logger.error("reconcile: %s", exc)
        egress_down = 1
    return {
        "crashed": crashed,
        "orphans_killed": len(killed),
        "pool_replaced": len(dead_pool),
        "egress_down": egress_down,
    }


def browsers_reconcile() -> dict[str, int]:
    """Compare rows with real browsers, fleet-wide (Beat, on any lifecycle worker).

    Hosts that stopped heartbeating are forgotten (their sessions end as crashed); every live
    host reconciles its own local browsers (host_reconcile, on its queue); Grid sessions are
    checked here; an ended session whose stop task was lost gets another one.
    """
    backend = get_backend()
    forgotten = hosts_dead_reap()
    alive = [h.name for h in placement.hosts_alive()]
    for host in alive:
        dispatch.host_reconcile(host, expires=settings.RECONCILE_INTERVAL_SECONDS)
    crashed = _end_if_gone(
        list(
            BrowserSession.objects.filter(status__in=LIVE_STATUSES, backend="grid")
            .exclude(webdriver_session_id="")
            .values_list("pk", flat=True)
        )
    )
    killed: list[str] = []
    if backend.name == "grid":
        # Re-read: sessions may have started or ended while we checked.
        live = BrowserSession.objects.filter(status__in=LIVE_STATUSES)
        killed = backend.kill_orphans(
            live_session_ids=set(live.values_list("pk", flat=True)) | live_job_browser_ids(),
            live_webdriver_ids=set(
                live.exclude(webdriver_session_id="").values_list("webdriver_session_id", flat=True)
            )
            | live_job_webdriver_ids(),
        )
        if killed:
            logger.warning(
                "killed %d Grid sessions that belonged to no live session: %s", len(killed), killed
            )
    elif not alive:
        # No host heartbeats (a worker without a host queue): this machine's browsers, here.
        result = host_reconcile(host=settings.WORKER_HOST)
        crashed += result.get("crashed", 0)
    lost_stops = list(
        BrowserSession.objects.filter(
            status=SessionStatus.TERMINATED,
            browser_released_at__isnull=True,
            ended_at__lte=timezone.now() - timedelta(seconds=settings.RECONCILE_INTERVAL_SECONDS),
        ).values_list("pk", "host", "backend")[:500]
    )
    for session_id, host, backend_name in lost_stops:
        if alive and host and backend_name != "grid" and host not in alive:
            # Its host was forgotten (dead): the browser went with it, nobody consumes its queue.
            session = BrowserSession.objects.filter(pk=session_id).first()
            if session is not None:
                session_browser_released(session=session)
            continue
        dispatch.browser_stop(session_id, host=host, backend=backend_name)
    return {
        "crashed": crashed,
        "orphans_killed": len(killed),
        "stops_requeued": len(lost_stops),
        "hosts_forgotten": len(forgotten),
    }
