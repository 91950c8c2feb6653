"""A session's page logs: console messages, page errors and network requests its browser's host
collected through DevTools (workers/page_logs.py), stored bounded per session, read cursor-paged
(GET /v1/computers/{id}/logs), kept SESSION_LOGS_RETENTION_DAYS after the session ended.

The cap keeps the first entries: once a session holds SESSION_LOGS_MAX_ENTRIES entries or
SESSION_LOGS_MAX_BYTES bytes of JSON, later entries are only counted, by kind, in
`PageLogStats.dropped`. The first part of a session (how it got where it is) is what is kept; the
reader sees how many entries of each kind were not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from project.exceptions import InvalidInput
from sessions.models import (
    BrowserSession,
    PageLogEntry,
    PageLogKind,
    PageLogLevel,
    PageLogStats,
    SessionStatus,
)


@dataclass(frozen=True)
class LogEntry:
    """One entry as a collector made it (plain values, so a worker thread builds it)."""

    kind: str
    level: str
    at: datetime
    data: dict[str, Any]


def _entry_bytes(entry: LogEntry) -> int:
    return len(json.dumps(entry.data, separators=(",", ":"))) + 48  # + the row's own columns


def page_logs_append(*, session_id: str, entries: list[LogEntry]) -> dict[str, int]:
    """Store what fits under the session's cap; count the rest as dropped. Returns
    {"stored": n, "dropped": m}. The stats row's lock serializes appenders of one session (one
    collector, but a restarted host may briefly run two)."""
    if not entries:
        return {"stored": 0, "dropped": 0}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO browser_sessions_pagelogstats (session_id, entries, bytes, dropped) "
                "SELECT id, 0, 0, '{}'::jsonb FROM browser_sessions_browsersession WHERE id = %s "
                "ON CONFLICT (session_id) DO NOTHING",
                [session_id],
            )
        stats = PageLogStats.objects.select_for_update().filter(session_id=session_id).first()
        if stats is None:  # the session row is gone
            return {"stored": 0, "dropped": len(entries)}
        rows: list[PageLogEntry] = []
        dropped: dict[str, int] = dict(stats.dropped or {})
        count, size = stats.entries, stats.bytes
        for entry in entries:
            cost = _entry_bytes(entry)
            if count + 1 > settings.SESSION_LOGS_MAX_ENTRIES or size + cost > settings.SESSION_LOGS_MAX_BYTES:
                dropped[entry.kind] = dropped.get(entry.kind, 0) + 1
                continue
            count, size = count + 1, size + cost
            rows.append(
                PageLogEntry(
                    session_id=session_id, kind=entry.kind, level=entry.level, at=entry.at, data=entry.data
                )
            )
        PageLogEntry.objects.bulk_create(rows)
        PageLogStats.objects.filter(pk=session_id).update(entries=count, bytes=size, dropped=dropped)
    return {"stored": len(rows), "dropped": len(entries) - len(rows)}


KINDS = tuple(PageLogKind.values)
LEVELS = tuple(PageLogLevel.values)
_LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class LogFilter:
    kinds: tuple[str, ...]
    min_level: str | None
    after: int


def log_filter_parse(*, kinds: list[str], level: str | None, after: str | None) -> LogFilter:
    """The query's filters, or 400: `type`/`kind` (repeatable or comma-separated), `level` (the
    lowest level shown), `after` (the cursor: the last id seen)."""
    wanted: list[str] = []
    for raw in kinds:
        wanted.extend(k.strip() for k in raw.split(",") if k.strip())
    unknown = [k for k in wanted if k not in KINDS]
    if unknown:
        raise InvalidInput(f"type must be one of {', '.join(KINDS)}.", code="invalid_log_type")
    if level is not None and level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}.", code="invalid_log_level")
    cursor = 0
    if after:
        if not after.isdigit() or len(after) > 19:
            raise InvalidInput("after must be a cursor from a previous page.", code="invalid_cursor")
        cursor = int(after)
    return LogFilter(kinds=tuple(dict.fromkeys(wanted)), min_level=level, after=cursor)


def page_logs_query(*, session: BrowserSession, filters: LogFilter) -> QuerySet[PageLogEntry]:
    queryset = PageLogEntry.objects.filter(session=session, id__gt=filters.after).order_by("id")
    if filters.kinds:
        queryset = queryset.filter(kind__in=filters.kinds)
    if filters.min_level:
        queryset = queryset.filter(level__in=LEVELS[_LEVEL_RANK[filters.min_level] :])
    return queryset


def page_logs_page(*, session: BrowserSession, filters: LogFilter, limit: int) -> dict[str, Any]:
    rows = list(page_logs_query(session=session, filters=filters)[: limit + 1])
    page, more = rows[:limit], len(rows) > limit
    stats = PageLogStats.objects.filter(session=session).first()
    return {
        "data": [page_log_payload(row) for row in page],
        "has_more": more,
        "next_cursor": str(page[-1].id) if page else (str(filters.after) if filters.after else None),
        "stored": stats.entries if stats else 0,
        "dropped": _dropped(stats),
        "collecting": session.status != SessionStatus.TERMINATED,
    }


def _dropped(stats: PageLogStats | None) -> dict[str, int]:
    held = dict(stats.dropped or {}) if stats else {}
    return {kind: int(held.get(kind, 0)) for kind in KINDS}


def page_log_payload(row: PageLogEntry) -> dict[str, Any]:
    data = row.data or {}
    return {
        "id": str(row.id),
        "type": row.kind,
        "level": row.level,
        "timestamp": row.at.isoformat().replace("+00:00", "Z"),
        **{field: data.get(field) for field in PAYLOAD_FIELDS},
    }


# Every field an entry may carry (null where it does not apply), in the order of the answer.
PAYLOAD_FIELDS = (
    "message",
    "source",
    "url",
    "line",
    "column",
    "tab_id",
    "method",
    "status",
    "status_text",
    "resource_type",
    "mime_type",
    "bytes",
    "duration_ms",
    "from_cache",
    "error",
)


def page_logs_ndjson(*, session: BrowserSession, filters: LogFilter, batch: int = 1000) -> Iterator[bytes]:
    """Every matching entry, one JSON object a line, read in batches by id."""
    after = filters.after
    while True:
        step = LogFilter(kinds=filters.kinds, min_level=filters.min_level, after=after)
        rows = list(page_logs_query(session=session, filters=step)[:batch])
        for row in rows:
            yield (json.dumps(page_log_payload(row), separators=(",", ":")) + "\n").encode()
        if len(rows) < batch:
            return
        after = rows[-1].id


def page_logs_purge(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Delete the logs of sessions that ended more than SESSION_LOGS_RETENTION_DAYS ago, at most
    `batch_size` sessions a run (the cost grows with what expired; the next run takes the rest).
    Returns how many sessions' logs were deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.SESSION_LOGS_RETENTION_DAYS)
    expired = list(
        PageLogStats.objects.filter(
            session__status=SessionStatus.TERMINATED, session__ended_at__lt=cutoff
        ).values_list("session_id", flat=True)[:batch_size]
    )
    if not expired:
        return 0
    with transaction.atomic():
        PageLogEntry.objects.filter(session_id__in=expired).delete()
        PageLogStats.objects.filter(session_id__in=expired).delete()
    return len(expired)
