"""What workers report about a session's browser: every such session change is written here.

Workers run browsers and call these with what happened (started, failed to start, released, the
main tab, the display, a long action's activity, a host that stopped heartbeating with its
browsers); the session's columns change only in `sessions`. The web request waiting for a start
is woken through project/completion.py.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from billing.selectors import session_cost
from billing.services import session_time_refund
from project.completion import completion_publish
from sessions.events import (
    session_events_publish_with_completion,
    session_status_event,
    session_status_publish,
)
from sessions.location import BrowserLocation
from sessions.models import LIVE_STATUSES, BrowserSession, EndedReason, SessionStatus, WarmBrowser, WorkerHost
from sessions.placement import alive_since
from sessions.services import session_terminate, started_event
from sessions.time_billing import session_time_bill
from webhooks import events as webhook_events
from webhooks.services import event_emit

logger = logging.getLogger(__name__)


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
            **location.columns(),
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
        # Before the create is woken: its first action's events come after this one. Both in one
        # Redis round trip (each is a wake-up of Redis and of this thread on the create's path).
        if connection.in_atomic_block:  # the event waits for the caller's commit; the signal not
            session_status_publish(session_id=session.pk, status=SessionStatus.READY, at=now)
            completion_publish(started_event(session.pk), {"ok": True})
        else:
            session_events_publish_with_completion(
                [session_status_event(session_id=session.pk, status=SessionStatus.READY, at=now)],
                started_event(session.pk),
                {"ok": True},
            )
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


def hosts_dead_reap(*, now: datetime | None = None) -> list[str]:
    """Forget hosts that stopped heartbeating while another still does: their live sessions end
    as crashed (their browsers went with the host, so they are released at once and their time
    settled) and their pool rows are deleted. Returns the names of the hosts forgotten."""
    now = now or timezone.now()
    if not WorkerHost.objects.filter(heartbeat_at__gte=alive_since(now)).exists():
        # No host is heartbeating: more likely the database (or this clock) was away than the
        # whole fleet. Hosts are only declared dead next to one that is seen alive.
        return []
    dead = list(WorkerHost.objects.filter(heartbeat_at__lt=alive_since(now)).values_list("pk", flat=True))
    for name in dead:
        session_ids = list(
            BrowserSession.objects.filter(status__in=LIVE_STATUSES, host=name)
            .exclude(backend="grid")
            .values_list("pk", flat=True)
        )
        for session_id in session_ids:
            ended = BrowserSession.objects.filter(pk=session_id, status__in=LIVE_STATUSES).update(
                status=SessionStatus.TERMINATED,
                ended_reason=EndedReason.CRASHED,
                ended_at=now,
                error=f"worker host {name} stopped answering",
            )
            if ended:
                session_status_publish(
                    session_id=session_id,
                    status=SessionStatus.TERMINATED,
                    ended_reason=EndedReason.CRASHED,
                    at=now,
                )
                session = BrowserSession.objects.get(pk=session_id)
                session_browser_released(session=session)
                completion_publish(started_event(session_id), {"ok": False})  # a create waiting
        with transaction.atomic():
            # Only if it is still silent: a host that came back keeps its row.
            if WorkerHost.objects.filter(pk=name, heartbeat_at__lt=alive_since(now)).delete()[0]:
                WarmBrowser.objects.filter(host=name).delete()
        logger.warning(
            "worker host %s stopped heartbeating: ended %d sessions as crashed", name, len(session_ids)
        )
    return dead
