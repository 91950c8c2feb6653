"""What workers report about a session's browser: every such session change is written here.

Workers run browsers and call these with what happened (started, failed to start, released, the
main tab, the display, a long action's activity); the session's columns change only in
`sessions`. The web request waiting for a start is woken through project/completion.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing.selectors import session_cost
from billing.services import session_time_refund
from project.completion import completion_publish
from sessions.events import session_status_publish
from sessions.models import BrowserSession, EndedReason, SessionStatus
from sessions.services import session_terminate, started_event
from sessions.time_billing import session_time_bill
from webhooks import events as webhook_events
from webhooks.services import event_emit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrowserLocation:
    """Where a started browser lives: enough for any worker to attach to it."""

    backend: str
    webdriver_url: str
    webdriver_session_id: str
    host: str
    browser_pid: int | None
    profile_dir: str


def session_browser_ready(*, session: BrowserSession, location: BrowserLocation) -> bool:
    """starting -> ready with where the browser lives; wakes the create that waits.

    False when the session ended while its browser started: the caller stops that browser, then
    calls session_browser_start_abandoned.
    """
    now = timezone.now()
    with transaction.atomic():  # the status and its webhook event (the outbox) commit together
        started = BrowserSession.objects.filter(pk=session.pk, status=SessionStatus.STARTING).update(
            status=SessionStatus.READY,
            started_at=now,
            last_activity_at=now,
            idle_expires_at=session.idle_deadline(now),
            backend=location.backend,
            webdriver_url=location.webdriver_url,
            webdriver_session_id=location.webdriver_session_id,
            host=location.host,
            browser_pid=location.browser_pid,
            profile_dir=location.profile_dir,
        )
        if started:
            event_emit(
                account_id=session.account_id,
                type=webhook_events.SESSION_STARTED,
                data={
                    "session_id": session.pk,
                    "started_at": now.isoformat(),
                    "expires_at": _iso(session.expires_at),
                },
                idempotency_key=f"session.started:{session.pk}",
            )
    if started:
        # Before the create is woken: its first action's events come after this one.
        session_status_publish(session_id=session.pk, status=SessionStatus.READY, at=now)
        completion_publish(started_event(session.pk), {"ok": True})
    return bool(started)


def session_browser_start_abandoned(*, session_id: str) -> None:
    """The session ended while its browser started, and that browser is stopped: wake the waiter."""
    completion_publish(started_event(session_id), {"ok": False})


def session_browser_start_failed(*, session_id: str, error: str) -> None:
    """The browser could not start: the session ends (start_failed); wakes the create that waits."""
    session_terminate(session_id=session_id, reason=EndedReason.START_FAILED, error=error)
    completion_publish(started_event(session_id), {"ok": False})


def session_browser_released(*, session: BrowserSession) -> None:
    """The ended session's browser is gone: settle its time, then record the release (once)."""
    if session.ended_reason == EndedReason.START_FAILED:
        # A browser that never started costs nothing.
        session_time_refund(session_id=session.pk, account_id=session.account_id)
    elif not session_time_bill(session_id=session.pk):
        logger.warning("session %s: balance ran out before its last minutes were charged", session.pk)
    with transaction.atomic():
        released = BrowserSession.objects.filter(pk=session.pk, browser_released_at__isnull=True).update(
            browser_released_at=timezone.now()
        )
        if released:
            _ended_event(session)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _ended_event(session: BrowserSession) -> None:
    """session.ended (and session.crashed) once its time is settled, so that `credits` is what it
    cost in all."""
    session.refresh_from_db(fields=["status", "ended_reason", "started_at", "ended_at"])
    duration = (
        (session.ended_at - session.started_at).total_seconds()
        if session.started_at and session.ended_at
        else 0.0
    )
    data = {
        "session_id": session.pk,
        "ended_reason": session.ended_reason,
        "started_at": _iso(session.started_at),
        "ended_at": _iso(session.ended_at),
        "duration_seconds": round(duration, 3),
        "credits": session_cost(session_id=session.pk),
    }
    if session.ended_reason == EndedReason.CRASHED:
        # Every path to `crashed` (an action's dead browser, reconcile, a dead host) releases here.
        event_emit(
            account_id=session.account_id,
            type=webhook_events.SESSION_CRASHED,
            data=data,
            idempotency_key=f"session.crashed:{session.pk}",
        )
    event_emit(
        account_id=session.account_id,
        type=webhook_events.SESSION_ENDED,
        data=data,
        idempotency_key=f"session.ended:{session.pk}",
    )


def session_main_tab_record(*, session: BrowserSession, tab_id: str) -> None:
    """Remember the main tab for the session's next action (blank: ask the browser then)."""
    if tab_id != session.main_tab_id:
        BrowserSession.objects.filter(pk=session.pk).update(main_tab_id=tab_id)
        session.main_tab_id = tab_id


def session_display_record(*, session: BrowserSession, width: int, height: int, scale: float) -> None:
    """The display an action (viewport) set, for the session's next actions and its API view."""
    BrowserSession.objects.filter(pk=session.pk).update(
        display_width=width, display_height=height, display_scale=scale
    )
    session.display_width, session.display_height, session.display_scale = width, height, scale


def session_activity_record(*, session: BrowserSession, at: datetime) -> None:
    """A long action is activity until it ends: it must not leave the session idle-expired."""
    BrowserSession.objects.filter(pk=session.pk, status=SessionStatus.RUNNING).update(
        last_activity_at=at, idle_expires_at=session.idle_deadline(at)
    )
