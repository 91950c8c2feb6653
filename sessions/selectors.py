from __future__ import annotations

from django.db.models import QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Account
from project.exceptions import InvalidInput, NotFound
from sessions.models import LIVE_STATUSES, Action, BrowserSession, SavedState, SessionStatus


def session_get(*, account: Account, session_id: str) -> BrowserSession:
    """The account's session; another account's session is exactly as missing as no session."""
    session = BrowserSession.objects.filter(pk=session_id, account=account).first()
    if session is None:
        raise NotFound(f"Session {session_id!r} not found.", code="session_not_found")
    return session


LIST_STATUS_FILTERS = {"live", "terminated", "all"}


def session_list(
    *, account: Account, status: str = "live", persistent: bool | None = None, limit: int = 100
) -> QuerySet[BrowserSession]:
    if status not in LIST_STATUS_FILTERS:
        raise InvalidInput(f"status must be one of {sorted(LIST_STATUS_FILTERS)}.")
    sessions = BrowserSession.objects.filter(account=account)
    if status == "live":
        sessions = sessions.filter(status__in=LIVE_STATUSES)
    elif status == "terminated":
        sessions = sessions.filter(status=SessionStatus.TERMINATED)
    if persistent:
        # Tzafon: "persistent sessions" are those whose state is saved (restorable).
        saved = SavedState.objects.filter(
            account=account, saved_at__isnull=False, expires_at__gt=timezone.now()
        ).values("pk")
        sessions = sessions.filter(pk__in=saved)
    # Each session shows what it cost so far; one aggregate instead of a query per session.
    sessions = sessions.annotate(ledger_total=Coalesce(Sum("ledger_entries__amount"), 0))
    return sessions.order_by("-created_at")[:limit]


def live_session_count(*, account_id: int) -> int:
    return BrowserSession.objects.filter(account_id=account_id, status__in=LIVE_STATUSES).count()


def action_get(*, account: Account, action_id: str) -> Action:
    action = Action.objects.filter(public_id=action_id, account=account).select_related("session").first()
    if action is None:
        raise NotFound(f"Action {action_id!r} not found.", code="action_not_found")
    return action


def action_list(*, session: BrowserSession) -> QuerySet[Action]:
    return Action.objects.filter(session=session).order_by("-id")
