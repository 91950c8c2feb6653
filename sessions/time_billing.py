"""Session time: which started minutes a session owes, charged through billing.

A session is charged per started minute from `created_at`, idle time included, keyed by session
and minute (billing.services.session_minute_charge). Minute 0 is charged with the create; the
billing task charges each later minute as it starts, and the stop charges what started before the
end. `billed_minutes` is the session's own record of what was charged; billing never writes it.
"""

from __future__ import annotations

import math
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from billing.services import session_minute_charge
from project.db import retry_on_conflict
from project.exceptions import InsufficientCredits
from sessions.models import LIVE_STATUSES, BrowserSession, EndedReason
from sessions.services import session_terminate


def minutes_started(created_at: datetime, until: datetime) -> int:
    """Started minutes between `created_at` and `until`: at least 1 (the create's own)."""
    seconds = (until - created_at).total_seconds()
    return max(1, math.floor(seconds / 60) + 1) if seconds >= 0 else 1


@retry_on_conflict
def session_time_bill(*, session_id: str, now: datetime | None = None) -> bool:
    """Charge the session's started minutes that are not charged yet; safe to run any time.

    Returns False when the balance ran dry: the caller ends the session (credits_exhausted).
    Lock order: session row, then the balance row (inside the charge), as everywhere.
    """
    now = now or timezone.now()
    with transaction.atomic():
        # NO KEY UPDATE: does not block inserts of actions that reference this session.
        session = BrowserSession.objects.select_for_update(no_key=True).get(pk=session_id)
        due = minutes_started(session.created_at, session.ended_at or now)
        billed = session.billed_minutes
        paid_up = True
        while billed < due:
            try:
                session_minute_charge(
                    account_id=session.account_id,
                    session_id=session.pk,
                    minute=billed,
                    api_key_id=session.api_key_id,
                )
            except InsufficientCredits:
                paid_up = False
                break
            billed += 1
        if billed != session.billed_minutes:
            BrowserSession.objects.filter(pk=session.pk).update(billed_minutes=billed)
    return paid_up


def sessions_bill_time(*, now: datetime | None = None) -> dict[str, int]:
    """The billing task: charge every live session whose next minute has started."""
    now = now or timezone.now()
    charged = exhausted = 0
    for session_id, created_at, billed in BrowserSession.objects.filter(status__in=LIVE_STATUSES).values_list(
        "pk", "created_at", "billed_minutes"
    ):
        if minutes_started(created_at, now) <= billed:
            continue
        charged += 1
        if not session_time_bill(session_id=session_id, now=now):
            exhausted += session_terminate(
                session_id=session_id,
                reason=EndedReason.CREDITS_EXHAUSTED,
                error="the credit balance ran out",
            )
    return {"sessions_charged": charged, "sessions_exhausted": exhausted}
