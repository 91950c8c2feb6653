"""Worker-side session services: start, stop and reconcile real browsers.

The session rows change only through sessions/ (browser_state.py, services.py): these run the
browsers and report what happened.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from jobs.selectors import live_job_browser_ids, live_job_webdriver_ids
from sessions import dispatch
from sessions.browser_state import (
    BrowserLocation,
    session_browser_ready,
    session_browser_released,
    session_browser_start_abandoned,
    session_browser_start_failed,
)
from sessions.models import LIVE_STATUSES, BrowserSession, EndedReason, SessionStatus
from sessions.services import session_terminate
from workers.browser import BrowserHandle, BrowserStartError, Display, egress, get_backend
from workers.browser.driver import forget

logger = logging.getLogger(__name__)


def handle_of(session: BrowserSession) -> BrowserHandle:
    return BrowserHandle(
        backend=session.backend,
        webdriver_url=session.webdriver_url,
        webdriver_session_id=session.webdriver_session_id,
        host=session.host,
        pid=session.browser_pid,
        profile_dir=session.profile_dir,
    )


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
    location = BrowserLocation(
        backend=handle.backend,
        webdriver_url=handle.webdriver_url,
        webdriver_session_id=handle.webdriver_session_id,
        host=handle.host,
        browser_pid=handle.pid,
        profile_dir=handle.profile_dir,
    )
    if not session_browser_ready(session=session, location=location):
        logger.info("session %s ended while its browser started; stopping it", session_id)
        backend.stop(handle, session_id=session_id)
        session_browser_start_abandoned(session_id=session_id)


def session_browser_stop(*, session_id: str) -> None:
    """Free an ended session's browser (processes, profile, Grid slot); safe to run twice."""
    session = BrowserSession.objects.filter(pk=session_id).first()
    if session is None or session.status != SessionStatus.TERMINATED or session.browser_released_at:
        return
    handle = handle_of(session)
    forget(handle)
    get_backend(session.backend or None).stop(handle, session_id=session_id)
    session_browser_released(session=session)


def browsers_reconcile() -> dict[str, int]:
    """Compare rows with real browsers.

    A live session whose browser is gone ends as crashed; a browser that belongs to no live
    session is killed; an ended session whose stop task was lost gets another one.
    """
    backend = get_backend()
    crashed = 0
    live = list(
        BrowserSession.objects.filter(status__in=LIVE_STATUSES).values_list(
            "pk", "status", "backend", "host", "webdriver_session_id"
        )
    )
    this_host = getattr(backend, "host", None)
    for session_id, status, backend_name, host, webdriver_id in live:
        if status == SessionStatus.STARTING or not webdriver_id:
            continue
        if backend_name == "local" and this_host is not None and host != this_host:
            continue  # only the machine that runs a local browser can see its processes
        session = BrowserSession.objects.filter(pk=session_id).first()
        if session is None:
            continue
        if not get_backend(backend_name).is_alive(handle_of(session)):
            logger.warning("session %s: browser is gone; ending it as crashed", session_id)
            crashed += session_terminate(
                session_id=session_id, reason=EndedReason.CRASHED, error="the browser exited"
            )
    # Re-read: sessions may have started or ended while we checked. Batch jobs' browsers
    # (profile ids `job-...`) are live while their rows are.
    live_ids = set(BrowserSession.objects.filter(status__in=LIVE_STATUSES).values_list("pk", flat=True))
    live_ids |= live_job_browser_ids()
    live_webdriver_ids = (
        set(
            BrowserSession.objects.filter(status__in=LIVE_STATUSES)
            .exclude(webdriver_session_id="")
            .values_list("webdriver_session_id", flat=True)
        )
        | live_job_webdriver_ids()
    )
    killed = backend.kill_orphans(live_session_ids=live_ids, live_webdriver_ids=live_webdriver_ids)
    if killed:
        logger.warning("killed %d browsers that belonged to no live session: %s", len(killed), killed)
    lost_stops = BrowserSession.objects.filter(
        status=SessionStatus.TERMINATED,
        browser_released_at__isnull=True,
        ended_at__lte=timezone.now() - timedelta(seconds=settings.RECONCILE_INTERVAL_SECONDS),
    ).values_list("pk", flat=True)[:500]
    for session_id in lost_stops:
        dispatch.browser_stop(session_id)
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
        "stops_requeued": len(lost_stops),
        "egress_down": egress_down,
    }
