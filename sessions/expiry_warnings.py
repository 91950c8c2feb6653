"""`session.expiring`: a webhook event 60 s before a live session reaches its max lifetime or its
idle deadline, for accounts that have a webhook endpoint.

Run from Beat (workers/webhook_tasks.py). One statement finds the candidates (live sessions of
accounts with an enabled endpoint, a deadline within the window); each warning's idempotency key
names the deadline, so a session whose idle deadline moves (an action) is warned again for the
new one, and a repeated run warns nobody twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from sessions.models import LIVE_STATUSES, BrowserSession, EndedReason, SessionStatus
from webhooks import events as webhook_events
from webhooks.models import Endpoint, Event
from webhooks.services import event_emit

WARNING_SECONDS = 60


def sessions_warn_expiring(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Emit session.expiring for sessions that end within WARNING_SECONDS; returns how many."""
    now = now or timezone.now()
    soon = now + timedelta(seconds=WARNING_SECONDS)
    accounts = Endpoint.objects.filter(enabled=True, job_id="").values("account_id")
    rows = list(
        BrowserSession.objects.filter(status__in=LIVE_STATUSES, account_id__in=accounts)
        .filter(
            Q(expires_at__lte=soon)
            | (Q(idle_timeout_enabled=True, idle_expires_at__lte=soon) & ~Q(status=SessionStatus.STARTING))
        )
        .values_list("pk", "account_id", "expires_at", "idle_expires_at", "idle_timeout_enabled")[:limit]
    )
    warnings = []
    for session_id, account_id, expires_at, idle_expires_at, idle_enabled in rows:
        deadline, reason = expires_at, EndedReason.MAX_LIFETIME
        if idle_enabled and idle_expires_at is not None and idle_expires_at < expires_at:
            deadline, reason = idle_expires_at, EndedReason.IDLE
        if deadline <= now:
            continue  # already past: the sweep ends it
        key = f"session.expiring:{session_id}:{int(deadline.timestamp())}"
        warnings.append((key, session_id, account_id, deadline, reason))
    sent = set(
        Event.objects.filter(idempotency_key__in=[w[0] for w in warnings]).values_list(
            "idempotency_key", flat=True
        )
    )
    emitted = 0
    for key, session_id, account_id, deadline, reason in warnings:
        if key in sent:
            continue
        with transaction.atomic():
            emitted += bool(
                event_emit(
                    account_id=account_id,
                    type=webhook_events.SESSION_EXPIRING,
                    data={
                        "session_id": session_id,
                        "reason": reason,
                        "expires_at": deadline.isoformat(),
                        "seconds_left": round((deadline - now).total_seconds(), 1),
                    },
                    idempotency_key=key,
                )
            )
    return emitted
