"""The operator dashboard: pages inside the admin site (staff only, through admin_view)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from ops import selectors
from sessions.models import EndedReason
from sessions.screenshots import screenshot_path_of
from sessions.services import session_terminate

# Staff see these pages with the view permission on sessions and act (terminate) with the change
# permission: a read-only operator account cannot end a tenant's session.
_can_view = permission_required("browser_sessions.view_browsersession", raise_exception=True)
_can_act = permission_required("browser_sessions.change_browsersession", raise_exception=True)


def _range_key(request: HttpRequest, default: str) -> str:
    key = request.GET.get("range", default)
    return key if key in selectors.RANGES else default


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, "ranges": selectors.RANGES.values(), **extra}


def _seconds_until(deadline: datetime | None, now: datetime) -> int | None:
    return None if deadline is None else int((deadline - now).total_seconds())


def _by_bucket(title: str, labels: list[str], series: dict[str, list[Any]]) -> dict[str, Any]:
    return {
        "columns": [title, *series],
        "rows": [
            [label, *("-" if values[i] is None else values[i] for values in series.values())]
            for i, label in enumerate(labels)
        ],
    }


def chart_tables(charts: dict[str, Any]) -> list[dict[str, Any]]:
    """Every chart's numbers as a table: the page without JavaScript, and the chart's source."""
    labels = charts["labels"]
    by_status = charts["actions_by_status"]
    return [
        {
            "key": "sessions",
            "title": "Sessions started and ended (by reason)",
            **_by_bucket("Bucket", labels, charts["sessions"]),
        },
        {
            "key": "session_minutes",
            "title": "Session minutes",
            **_by_bucket("Bucket", labels, charts["session_minutes"]),
        },
        {
            "key": "credits",
            "title": "Credits spent by kind",
            **_by_bucket("Bucket", labels, charts["credits"]),
        },
        {
            "key": "actions",
            "title": "Actions by type and status",
            "columns": ["Type", *by_status],
            "rows": [
                [t, *(counts[i] for counts in by_status.values())]
                for i, t in enumerate(charts["action_types"])
            ],
        },
        {
            "key": "latency",
            "title": "Action latency p50 / p95 (ms)",
            **_by_bucket("Bucket", labels, charts["latency_ms"]),
        },
        {
            "key": "top_accounts",
            "title": "Top accounts by spend",
            "columns": ["Account", "Credits", "Ledger lines"],
            "rows": [[row["name"], row["spent"], row["lines"]] for row in charts["top_accounts"]],
            "links": [reverse("ops:account", args=[row["account_id"]]) for row in charts["top_accounts"]],
        },
    ]


@_can_view
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    range_key = _range_key(request, "24h")
    tiles = selectors.tiles_read(now=now)
    charts = selectors.charts_read_cached(range_key=range_key, now=now)
    live = selectors.live_sessions_read()
    for row in live:
        row["age_seconds"] = int((now - row["created_at"]).total_seconds())
        row["idle_in"] = _seconds_until(row["idle_expires_at"], now)
        row["lifetime_in"] = _seconds_until(row["expires_at"], now)
    context = _context(
        request,
        "Fleet dashboard",
        now=now,
        range_key=range_key,
        tiles=tiles,
        charts=charts,
        chart_tables=chart_tables(charts),
        charts_cache_seconds=settings.OPS_CHARTS_CACHE_SECONDS,
        live=live,
        ended_reasons=[r.value for r in EndedReason],
    )
    return TemplateResponse(request, "admin/ops/dashboard.html", context)


@_can_view
def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    found = selectors.session_timeline_read(session_id=session_id)
    if found is None:
        raise Http404("No such session.")
    now = timezone.now()
    for item in found["actions"]:
        token = item["screenshot_token"]
        # An expired token has no picture any more; its row says so instead of a broken image.
        item["screenshot_url"] = (
            reverse("screenshot", args=[token]) if token and screenshot_path_of(token) else None
        )
        item["screenshot_expired"] = bool(token) and item["screenshot_url"] is None
    session = found["session"]
    context = _context(
        request,
        f"Session {session.pk}",
        now=now,
        session=session,
        idle_in=_seconds_until(session.idle_expires_at, now) if session.is_live else None,
        lifetime_in=_seconds_until(session.expires_at, now) if session.is_live else None,
        actions=found["actions"],
        ledger=found["ledger"],
        charged=-sum(line.amount for line in found["ledger"] if line.amount < 0),
    )
    return TemplateResponse(request, "admin/ops/session.html", context)


@_can_view
def account_detail(request: HttpRequest, account_id: int) -> HttpResponse:
    range_key = _range_key(request, "30d")
    found = selectors.account_overview_read(account_id=account_id, range_key=range_key)
    if found is None:
        raise Http404("No such account.")
    account = found["account"]
    context = _context(
        request,
        f"Account {account.name}",
        range_key=range_key,
        overview=found,
        chart={"labels": found["labels"], "balance": found["balance"]},
        balance_rows=[
            (label, "-" if value is None else value)
            for label, value in zip(found["labels"], found["balance"], strict=True)
        ],
        topup_url=reverse("admin:accounts_account_credits", args=[account.pk, "topup"]),
        change_url=reverse("admin:accounts_account_change", args=[account.pk]),
    )
    return TemplateResponse(request, "admin/ops/account.html", context)


@require_POST
@_can_act
def session_terminate_view(request: HttpRequest, session_id: str) -> HttpResponse:
    ended = session_terminate(session_id=session_id, reason=EndedReason.ADMIN)
    if ended:
        messages.success(request, f"Session {session_id} terminated; its browser is being stopped.")
    else:
        messages.warning(request, f"Session {session_id} had already ended.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("ops:session", args=[session_id])
    return HttpResponseRedirect(back)
