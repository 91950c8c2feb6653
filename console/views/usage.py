"""Usage: credits by kind over 24 h, 7 d and 30 d, as charts, tables and CSV. The numbers are
/v1/usage's for the same from/to (reports.usage.usage_report through the API's own output
serializer): the page embeds that very answer for its charts, and the tables and the CSV are
drawn from it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import ApiKey, Membership
from console.access import member_view, render_page
from console.selectors import USAGE_RANGES, usage_range
from reports.serializers import UsageOutput
from reports.usage import usage_report


def _usage(request: HttpRequest, member: Membership) -> tuple[dict[str, Any], dict[str, Any]]:
    key = request.GET.get("range", "7d")
    if key not in USAGE_RANGES:
        key = "7d"
    # `to` pins the range (the CSV link repeats the page's, so both hold the same numbers).
    end: datetime | None = None
    raw_end = request.GET.get("to")
    if raw_end:
        try:
            end = parse_datetime(raw_end)
        except ValueError:
            end = None
        if end is not None and end.tzinfo is None:
            end = timezone.make_aware(end, UTC)
    now = timezone.now()
    if end is None or end > now:
        end = now
    span = usage_range(key, end=end)
    report = usage_report(
        account_id=member.account_id,
        start=span["from"],
        end=span["to"],
        group_by=span["group_by"],
        api_key_id=_api_key_id(request, member),
    )
    return span, dict(UsageOutput(report).data)


def _api_key_id(request: HttpRequest, member: Membership) -> int | None:
    """`?key=` narrows the page to one of the account's keys (/v1/usage's `api_key`); any other
    account's key, or no key at all, is 404 as every other id of the console."""
    raw = request.GET.get("key", "")
    if not raw:
        return None
    if not raw.isdigit() or not ApiKey.objects.filter(pk=int(raw), account_id=member.account_id).exists():
        raise Http404
    return int(raw)


@member_view
def usage(request: HttpRequest, member: Membership) -> HttpResponse:
    span, data = _usage(request, member)
    return render_page(
        request,
        member,
        "console/usage.html",
        nav="usage",
        span=span,
        usage=data,
        ranges=[(key, label) for key, (label, _, _) in USAGE_RANGES.items()],
        to_param=data["to"],
        keys=ApiKey.objects.filter(account_id=member.account_id).order_by("name", "pk"),
        key_param=data["api_key"] or "",
    )


def usage_csv_rows(data: dict[str, Any]) -> list[list[Any]]:
    """The CSV's rows: section, key, credits, session_minutes (one table, four sections)."""
    rows: list[list[Any]] = [["section", "key", "credits", "session_minutes"]]
    rows.append(["total", f"{data['from']}/{data['to']}", data["credits_spent"], data["session_minutes"]])
    rows += [["kind", kind, credits, ""] for kind, credits in data["credits_by_kind"].items()]
    rows += [["action_type", name, credits, ""] for name, credits in data["credits_by_action_type"].items()]
    rows += [["api_key", k["prefix"] or "(none)", k["credits"], ""] for k in data["credits_by_api_key"]]
    rows += [["bucket", b["start"], b["credits"], b["session_minutes"]] for b in data["buckets"]]
    return rows


@member_view
def usage_csv(request: HttpRequest, member: Membership) -> HttpResponse:
    span, data = _usage(request, member)
    buffer = io.StringIO()
    csv.writer(buffer).writerows(usage_csv_rows(data))
    response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="usage-{span["key"]}.csv"'
    return response
