"""Page logs without a browser: the per-session cap, the filters and cursor, the retention purge
(database only; the collection itself is in tests/flows/test_page_logs.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Plan
from accounts.plans import seed_plans
from accounts.services import account_create
from project.exceptions import InvalidInput
from sessions.models import PageLogEntry, PageLogStats
from sessions.page_logs import (
    LogEntry,
    log_filter_parse,
    page_logs_append,
    page_logs_ndjson,
    page_logs_page,
    page_logs_purge,
)
from tests.support.rows import session_row


@pytest.fixture
def account(db):
    seed_plans(Plan)
    return account_create(name="logs", plan_name="pro", credits=0)[0]


def _entry(kind: str = "console", level: str = "info", message: str = "m") -> LogEntry:
    return LogEntry(kind=kind, level=level, at=timezone.now(), data={"message": message})


def test_a_sessions_logs_stop_at_the_entry_cap_and_count_what_was_dropped_by_type(account, settings):
    settings.SESSION_LOGS_MAX_ENTRIES = 10
    session = session_row(account, status="running")
    first = page_logs_append(session_id=session.pk, entries=[_entry(message=str(i)) for i in range(7)])
    second = page_logs_append(
        session_id=session.pk,
        entries=[_entry(message="late")] * 2 + [_entry("network")] * 3 + [_entry("error", "error")] * 2,
    )
    assert first == {"stored": 7, "dropped": 0}
    assert second == {"stored": 3, "dropped": 4}
    assert PageLogEntry.objects.filter(session=session).count() == 10
    # The first entries are kept, in order; what came after the cap is only counted.
    kept = list(PageLogEntry.objects.filter(session=session).order_by("id").values_list("kind", flat=True))
    assert kept == ["console"] * 9 + ["network"]
    page = page_logs_page(
        session=session, filters=log_filter_parse(kinds=[], level=None, after=None), limit=100
    )
    assert page["stored"] == 10
    assert page["dropped"] == {"console": 0, "error": 2, "network": 2}


def test_a_sessions_logs_stop_at_the_byte_cap(account, settings):
    settings.SESSION_LOGS_MAX_BYTES = 10_000
    session = session_row(account, status="running")
    result = page_logs_append(session_id=session.pk, entries=[_entry(message="x" * 1000)] * 20)
    assert result["stored"] == 9 and result["dropped"] == 11
    assert PageLogStats.objects.get(pk=session.pk).bytes <= 10_000


def test_filters_and_the_cursor_page_through_every_entry_once(account):
    session = session_row(account, status="running")
    page_logs_append(
        session_id=session.pk,
        entries=[
            _entry("console", "debug"),
            _entry("console", "warning"),
            _entry("network", "info"),
            _entry("error", "error"),
            _entry("network", "error"),
        ],
    )
    everything = log_filter_parse(kinds=[], level=None, after=None)
    seen, after = [], None
    while True:
        page = page_logs_page(
            session=session, filters=log_filter_parse(kinds=[], level=None, after=after), limit=2
        )
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            break
        after = page["next_cursor"]
    assert seen == [e["id"] for e in page_logs_page(session=session, filters=everything, limit=100)["data"]]
    assert len(seen) == 5
    network = page_logs_page(
        session=session, filters=log_filter_parse(kinds=["network"], level=None, after=None), limit=100
    )
    assert [e["type"] for e in network["data"]] == ["network", "network"]
    warnings_up = page_logs_page(
        session=session, filters=log_filter_parse(kinds=[], level="warning", after=None), limit=100
    )
    assert [e["level"] for e in warnings_up["data"]] == ["warning", "error", "error"]
    both = log_filter_parse(kinds=["console,error"], level="error", after=None)
    assert [e["type"] for e in page_logs_page(session=session, filters=both, limit=100)["data"]] == ["error"]
    lines = b"".join(page_logs_ndjson(session=session, filters=everything, batch=2)).splitlines()
    assert len(lines) == 5


@pytest.mark.parametrize(
    ("kinds", "level", "after"),
    [(["cookies"], None, None), ([], "fatal", None), ([], None, "abc"), ([], None, "9" * 30)],
)
def test_bad_log_filters_are_400(kinds, level, after):
    with pytest.raises(InvalidInput):
        log_filter_parse(kinds=kinds, level=level, after=after)


def test_the_purge_deletes_logs_of_sessions_ended_past_the_retention_only(account, settings):
    settings.SESSION_LOGS_RETENTION_DAYS = 7
    now = timezone.now()
    old = session_row(account, status="terminated", ended_at=now - timedelta(days=8), ended_reason="user")
    recent = session_row(account, status="terminated", ended_at=now - timedelta(days=6), ended_reason="user")
    live = session_row(account, status="running", created_at=now - timedelta(days=30))
    for session in (old, recent, live):
        page_logs_append(session_id=session.pk, entries=[_entry(), _entry("network")])
    assert page_logs_purge(now=now) == 1
    assert not PageLogEntry.objects.filter(session=old).exists()
    assert not PageLogStats.objects.filter(session=old).exists()
    assert PageLogEntry.objects.filter(session=recent).count() == 2
    assert PageLogEntry.objects.filter(session=live).count() == 2
    assert page_logs_purge(now=now) == 0
