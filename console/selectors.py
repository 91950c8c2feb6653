"""What the console's pages show, read from the apps below. Every query starts from the account,
so another account's object is never found. Numbers that the API also answers come from the
same selectors the API uses (usage: reports.usage.usage_report, as /v1/usage)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.files.storage import default_storage
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from accounts.models import Account
from billing.models import LedgerEntry
from billing.selectors import balance_of, session_cost
from jobs import selectors as job_selectors
from jobs.models import ACTIVE_JOB_STATUSES, ItemStatus, Job, JobItem
from project.exceptions import NotFound
from reports.usage import usage_report
from sessions.models import LIVE_STATUSES, Action, BrowserSession, SavedState, SessionStatus
from sessions.screenshots import screenshot_path_of
from sessions.selectors import live_session_count

# The Usage page's ranges: (label, length, bucket) as /v1/usage takes them.
USAGE_RANGES: dict[str, tuple[str, timedelta, str]] = {
    "24h": ("24 hours", timedelta(hours=24), "hour"),
    "7d": ("7 days", timedelta(days=7), "day"),
    "30d": ("30 days", timedelta(days=30), "day"),
}
# How far back the burn rate looks.
BURN_WINDOW = timedelta(days=7)


def _spent(*, account_id: int, start: datetime, end: datetime) -> int:
    return int(usage_report(account_id=account_id, start=start, end=end, group_by="day")["credits_spent"])


def overview_numbers(*, account: Account, now: datetime | None = None) -> dict[str, Any]:
    """Balance, spending today (UTC) and this month, the burn rate over the last 7 days (or the
    account's life, if shorter) and how long the balance lasts at it; live sessions, job
    browsers and running jobs against the plan."""
    now = now or timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = today.replace(day=1)
    # Spending of the last 7 days over 7 days, or over the account's age if younger (at least an
    # hour, so a new account's first minutes do not extrapolate wildly).
    window_seconds = min(BURN_WINDOW.total_seconds(), (now - account.created_at).total_seconds())
    window_days = max(window_seconds, 3600.0) / 86400
    spent_window = _spent(account_id=account.pk, start=now - BURN_WINDOW, end=now)
    balance = balance_of(account_id=account.pk)
    per_day = spent_window / window_days if spent_window else 0.0
    live = live_session_count(account_id=account.pk)
    job_browsers = job_selectors.live_job_browser_count(account.pk)
    jobs = list(
        Job.objects.filter(account=account, status__in=ACTIVE_JOB_STATUSES)
        .defer("invalid_urls", "duplicate_urls")
        .order_by("-created_at")[:10]
    )
    return {
        "now": now,
        "balance": balance,
        "spent_today": _spent(account_id=account.pk, start=today, end=now),
        "spent_month": _spent(account_id=account.pk, start=month, end=now),
        "month_start": month,
        "burn_per_day": round(per_day),
        "burn_per_hour": round(per_day / 24, 1),
        "burn_window": f"{round(window_days)} days"
        if window_days >= 2
        else f"{round(window_days * 24)} hours",
        "lasts_days": None if per_day <= 0 else int(balance / per_day),
        "live_sessions": live,
        "job_browsers": job_browsers,
        "browsers_in_use": live + job_browsers,
        "max_concurrent_sessions": account.plan.max_concurrent_sessions,
        "running_jobs": [job_row(job) for job in jobs],
        "active_jobs": Job.objects.filter(account=account, status__in=ACTIVE_JOB_STATUSES).count(),
    }


def usage_range(key: str, *, end: datetime) -> dict[str, Any]:
    """One range of the Usage page, as /v1/usage?from=&to=&group_by= answers it."""
    label, length, group_by = USAGE_RANGES[key]
    start = end - length
    return {"key": key, "label": label, "from": start, "to": end, "group_by": group_by}


# --- Sessions ----------------------------------------------------------------------------------

SESSION_FILTERS = ("live", "terminated", "all")


@dataclass(frozen=True)
class SessionRow:
    session: BrowserSession
    actions: int
    cost: int


def console_sessions(*, account: Account, status: str, limit: int = 50, offset: int = 0) -> list[SessionRow]:
    """A page of the account's sessions, newest first, with their action count and cost (two
    grouped queries for the page, not one per row; not joined, which would multiply the sums)."""
    sessions = BrowserSession.objects.filter(account=account)
    if status == "live":
        sessions = sessions.filter(status__in=LIVE_STATUSES)
    elif status == "terminated":
        sessions = sessions.filter(status=SessionStatus.TERMINATED)
    page = list(sessions.order_by("-created_at", "-pk")[offset : offset + limit])
    ids = [s.pk for s in page]
    actions = dict(
        Action.objects.filter(session_id__in=ids)
        .values("session_id")
        .annotate(n=Count("id"))
        .values_list("session_id", "n")
    )
    costs = dict(
        LedgerEntry.objects.filter(session_id__in=ids)
        .values("session_id")
        .annotate(total=Sum("amount"))
        .values_list("session_id", "total")
    )
    return [SessionRow(session=s, actions=actions.get(s.pk, 0), cost=-(costs.get(s.pk) or 0)) for s in page]


def console_session(*, account: Account, session_id: str) -> BrowserSession:
    session = BrowserSession.objects.filter(pk=session_id, account=account).first()
    if session is None:
        raise Http404
    return session


@dataclass(frozen=True)
class TimelineEntry:
    action: Action
    screenshots: list[str]  # screenshot tokens whose file is still kept
    error_code: str


def _tokens(result: Any) -> list[str]:
    if not isinstance(result, dict):
        return []
    tokens = [result["screenshot_token"]] if result.get("screenshot_token") else []
    for step in result.get("steps") or []:
        if isinstance(step, dict):
            tokens += _tokens(step.get("result"))
    return tokens


def _kept(token: str) -> bool:
    path = screenshot_path_of(token)
    return path is not None and default_storage.exists(path)


def session_timeline(*, session: BrowserSession, limit: int = 200) -> list[TimelineEntry]:
    """The session's actions, oldest first (at most `limit`, the latest), with the screenshots
    still kept (their URLs expire after SCREENSHOT_URL_TTL_SECONDS)."""
    actions = list(Action.objects.filter(session=session).order_by("-id")[:limit])[::-1]
    return [
        TimelineEntry(
            action=action,
            screenshots=[t for t in _tokens(action.result) if _kept(t)],
            error_code=str((action.result or {}).get("error_code") or "")
            if isinstance(action.result, dict)
            else "",
        )
        for action in actions
    ]


def session_facts(*, session: BrowserSession) -> dict[str, Any]:
    now = timezone.now()
    ended = session.ended_at or (None if session.is_live else session.last_activity_at)
    return {
        "cost": session_cost(session_id=session.pk),
        "duration_seconds": int(((ended or now) - session.created_at).total_seconds()),
        "saved_state": SavedState.objects.filter(account_id=session.account_id, pk=session.pk).first(),
        "expires_in": int((session.expires_at - now).total_seconds()) if session.is_live else None,
    }


# --- Jobs --------------------------------------------------------------------------------------


def job_row(job: Job) -> dict[str, Any]:
    """A job with its counts and progress (percent of its URLs finished), for lists."""
    progress = job_selectors.job_progress(job=job)
    finished = job.total - progress.counts["queued"] - progress.counts["running"]
    return {
        "job": job,
        "progress": progress,
        "finished": finished,
        "percent": int(100 * finished / job.total) if job.total else 100,
    }


def console_jobs(
    *, account: Account, status: str | None, limit: int = 50, offset: int = 0
) -> list[dict[str, Any]]:
    if status not in job_selectors.JOB_LIST_STATUSES:
        status = None  # an unknown filter shows every job
    jobs = job_selectors.job_list(account=account, status=status)
    return [job_row(job) for job in jobs[offset : offset + limit]]


def console_job(*, account: Account, job_id: str) -> Job:
    try:
        return job_selectors.job_get(account=account, job_id=job_id)
    except NotFound:
        raise Http404 from None


def job_failures(*, job: Job) -> list[dict[str, Any]]:
    """Failed pages by reason (error code), most frequent first, with one example message."""
    rows = (
        JobItem.objects.filter(job=job, status=ItemStatus.FAILED)
        .values("error_code")
        .annotate(n=Count("id"))
        .order_by("-n", "error_code")
    )
    out = []
    for row in rows:
        example = (
            JobItem.objects.filter(job=job, status=ItemStatus.FAILED, error_code=row["error_code"])
            .order_by("seq")
            .values("url", "error_message")
            .first()
        )
        out.append({"code": row["error_code"] or "unknown", "count": row["n"], "example": example})
    return out


def job_recent_items(*, job: Job, limit: int = 20) -> QuerySet[JobItem]:
    return (
        JobItem.objects.filter(job=job)
        .filter(~Q(status__in=[ItemStatus.QUEUED]))
        .defer("data", "metadata")
        .order_by("-finished_at", "-seq")[:limit]
    )
