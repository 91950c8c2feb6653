"""What the operator dashboard shows, read in a fixed number of SQL statements per page.

Every figure is aggregated by PostgreSQL (GROUP BY, FILTER, percentile_cont, LATERAL); no page
loops over rows issuing queries. bench/dashboard.py times these against a million actions.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.models import Account, ApiKey
from billing.models import LedgerEntry
from jobs.models import ACTIVE_JOB_STATUSES, JobStatus
from project.heartbeat import heartbeats_read
from project.proxy_pool import POOL_HEALTH_KEY, pool_bytes_key
from project.queues import drain_list, drain_queues
from project.redis import get_redis
from sessions.models import (
    FINISHED_ACTION_STATUSES,
    LIVE_STATUSES,
    BrowserSession,
    SavedStateStatus,
    WarmBrowserState,
)
from sessions.proxies import advanced_pool

# Ledger kinds that are not spending: money in, and operators' corrections.
NOT_SPEND_KINDS = ["grant", "topup", "adjustment"]
# Tiles count actions over this recent window.
ACTIVITY_WINDOW_MINUTES = 15


@dataclass(frozen=True)
class Range:
    key: str
    label: str
    length: timedelta
    step: timedelta


RANGES = {
    "24h": Range("24h", "24 hours", timedelta(hours=24), timedelta(hours=1)),
    "7d": Range("7d", "7 days", timedelta(days=7), timedelta(hours=6)),
    "30d": Range("30d", "30 days", timedelta(days=30), timedelta(days=1)),
}
# Buckets are aligned to this instant, so they stay put between page loads.
_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


def _rows(sql: str, params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _live() -> list[str]:
    return [str(s) for s in LIVE_STATUSES]


# --- Tiles -----------------------------------------------------------------------------------


@dataclass
class Tiles:
    sessions_by_status: dict[str, int]
    browsers_by_host: dict[str, int]
    queue_depths: dict[str, int | None]
    workers: dict[str, float]  # hostname -> seconds since its last heartbeat
    actions_recent: int
    actions_per_minute: float
    actions_finished_recent: int
    actions_failed_recent: int
    actions_errored_recent: int
    credits_spent_today: int
    extra: list[Tile] = field(default_factory=list)
    window_minutes: int = ACTIVITY_WINDOW_MINUTES

    @property
    def live_sessions(self) -> int:
        return sum(self.sessions_by_status.values())

    @property
    def error_rate_percent(self) -> float | None:
        if not self.actions_finished_recent:
            return None
        bad = self.actions_failed_recent + self.actions_errored_recent
        return round(100.0 * bad / self.actions_finished_recent, 1)

    @property
    def workers_online(self) -> int:
        return sum(1 for age in self.workers.values() if age <= settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS)


@dataclass(frozen=True)
class Tile:
    """A tile that another app contributes (jobs running, warm pool) through OPTIONAL_TILES."""

    key: str
    label: str
    value: int | float | str
    detail: str = ""


def warm_pool_tile() -> Tile | None:
    """Warm browsers ready to be claimed, per host, and the oldest one's age (one statement)."""
    rows = _rows(
        "SELECT host, count(*) FILTER (WHERE state = %(ready)s), count(*) FILTER (WHERE state <> %(ready)s),"
        " min(ready_at) FROM browser_sessions_warmbrowser GROUP BY host ORDER BY host",
        {"ready": str(WarmBrowserState.READY)},
    )
    shell_pool = settings.BROWSER_POOL_SIZE_HEADLESS_SHELL
    if not rows and not settings.BROWSER_POOL_SIZE and not shell_pool:
        return None  # no pool configured, none left over: nothing to show
    ready = sum(row[1] for row in rows)
    starting = sum(row[2] for row in rows)
    oldest = min((row[3] for row in rows if row[3] is not None), default=None)
    parts = [", ".join(f"{host} {count}" for host, count, _, _ in rows) or "no host has one"]
    if starting:
        parts.append(f"{starting} starting")
    if oldest is not None:
        parts.append(f"oldest {int((timezone.now() - oldest).total_seconds())} s")
    return Tile(
        key="warm-pool",
        label=f"Warm browsers (pool of {settings.BROWSER_POOL_SIZE} per host"
        + (f", and {shell_pool} headless shells)" if shell_pool else ")"),
        value=ready,
        detail="; ".join(parts),
    )


def jobs_tile() -> Tile:
    """Batch jobs running and waiting (one statement)."""
    [(running, queued, cancelling)] = _rows(
        "SELECT count(*) FILTER (WHERE status = %(running)s), count(*) FILTER (WHERE status = %(queued)s),"
        " count(*) FILTER (WHERE status = %(cancelling)s) FROM jobs_job"
        " WHERE status = ANY(%(active)s)",
        {
            "running": str(JobStatus.RUNNING),
            "queued": str(JobStatus.QUEUED),
            "cancelling": str(JobStatus.CANCELLING),
            "active": [str(status) for status in ACTIVE_JOB_STATUSES],
        },
    )
    detail = f"{queued} queued" + (f", {cancelling} cancelling" if cancelling else "")
    return Tile(key="jobs", label="Batch jobs running", value=running, detail=detail)


def webhooks_tile() -> Tile | None:
    """Webhook deliveries that failed for good in the last 24 h, with what is pending and how
    many endpoints are failing now (one statement); nothing when no endpoint exists."""
    [(endpoints, failing, failed, pending, delivered)] = _rows(
        "SELECT (SELECT count(*) FROM webhooks_endpoint),"
        " (SELECT count(*) FROM webhooks_endpoint WHERE enabled AND failing_since IS NOT NULL),"
        " count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'pending'),"
        " count(*) FILTER (WHERE status = 'delivered')"
        " FROM webhooks_delivery WHERE created_at >= now() - interval '24 hours'"
    )
    if not endpoints:
        return None
    settled = failed + delivered
    rate = f"{failed / settled:.1%} of {settled} settled" if settled else "none settled"
    detail = f"{rate}; {pending} pending; {failing} endpoints failing"
    return Tile(key="webhooks", label="Webhook deliveries failed (24 h)", value=failed, detail=detail)


def _megabytes(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB" if count >= 100_000 else f"{count / 1000:.1f} KB"


def saved_states_tile() -> Tile | None:
    """Saved browser states kept, their encrypted bytes, and the ones saving now or whose last save
    failed (one statement); nothing when no account keeps one."""
    [(count, stored, plaintext, saving, failed, elsewhere)] = _rows(
        "SELECT count(*), coalesce(sum(stored_bytes), 0), coalesce(sum(size_bytes), 0),"
        " count(*) FILTER (WHERE status = %(saving)s), count(*) FILTER (WHERE status = %(failed)s),"
        " count(*) FILTER (WHERE saved_at IS NOT NULL AND store <> %(store)s)"
        " FROM browser_sessions_savedstate",
        {
            "saving": str(SavedStateStatus.SAVING),
            "failed": str(SavedStateStatus.FAILED),
            "store": settings.SAVED_STATE_STORE,
        },
    )
    if not count:
        return None
    detail = (
        f"{_megabytes(int(stored))} encrypted in {settings.SAVED_STATE_STORE}"
        f" ({_megabytes(int(plaintext))} of state); {saving} saving, {failed} failed"
    )
    if elsewhere:
        detail += f"; {elsewhere} still in another store (manage.py saved_states_move)"
    return Tile(key="saved-states", label="Saved browser states", value=count, detail=detail)


def proxy_pool_tile() -> Tile | None:
    """Bytes through the operator's proxy pool today (UTC), by member (its name carries its
    country tag), as every egress filter counted them, and the members the probes find down (one
    Redis round trip, no SQL); nothing without a pool, or when Redis cannot be read."""
    pool = advanced_pool()
    if not pool:
        return None
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.hgetall(pool_bytes_key(timezone.now().astimezone(UTC).date()))
        pipe.hgetall(POOL_HEALTH_KEY)
        carried, health = pipe.execute()
    except RedisError:
        return None
    by_member = {member.name: int(carried.get(member.name.encode()) or 0) for member in pool}
    down = []
    for member in pool:
        raw = health.get(member.server.split("://", 1)[1].encode())
        with contextlib.suppress(ValueError, TypeError, KeyError):
            if raw is not None and not json.loads(raw)["up"]:
                down.append(member.name)
    detail = ", ".join(f"{name} {_megabytes(count)}" for name, count in by_member.items())
    if down:
        detail += f"; down: {', '.join(down)}"
    return Tile(
        key="proxy-pool",
        label="Advanced proxy bytes today",
        value=_megabytes(sum(by_member.values())),
        detail=detail,
    )


# Tiles that other parts contribute: one SQL statement each; a provider returns None when it has
# nothing to show (the dashboard never shows a number it cannot read).
OPTIONAL_TILES: list[Callable[[], Tile | None]] = [
    warm_pool_tile,
    jobs_tile,
    webhooks_tile,
    saved_states_tile,
    proxy_pool_tile,
]


def queue_names() -> list[str]:
    """The Celery queues tasks are routed to (each is a Redis list named after the queue)."""
    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    names.update(route["queue"] for route in settings.CELERY_TASK_ROUTES.values() if "queue" in route)
    return sorted(names)


def queue_lists(name: str) -> list[str]:
    """The Redis lists of one queue: the broker's, and for an actions queue its drain requests
    (project/queues.py `drain_list`: actions are not Celery messages)."""
    return [name, *(drain_list(queue) for queue in drain_queues([name]))]


def queue_depth_commands(pipe: Any, names: list[str]) -> Callable[[list[int]], list[int]]:
    """Add the LLENs of `names`' lists to `pipe`; return what sums their replies, one per name."""
    counts = []
    for name in names:
        lists = queue_lists(name)
        for key in lists:
            pipe.llen(key)
        counts.append(len(lists))

    def depths(replies: list[int]) -> list[int]:
        at, summed = 0, []
        for count in counts:
            summed.append(sum(replies[at : at + count]))
            at += count
        return summed

    return depths


def queue_depths() -> dict[str, int | None]:
    """Tasks waiting in each queue (LLEN of the broker's list, and of its drain requests for an
    actions queue); None when Redis did not answer."""
    names = queue_names()
    try:
        pipe = get_redis().pipeline(transaction=False)
        depths = queue_depth_commands(pipe, names)
        return dict(zip(names, depths(pipe.execute()), strict=True))
    except Exception:  # a dashboard with Redis down still shows the database's figures
        return dict.fromkeys(names)


def workers_seen() -> dict[str, float]:
    try:
        return heartbeats_read()
    except Exception:  # as above
        return {}


def tiles_read(*, now: datetime | None = None) -> Tiles:
    """Two SQL statements and two Redis round trips."""
    now = now or timezone.now()
    by_status: dict[str, int] = {str(s): 0 for s in LIVE_STATUSES}
    by_host: dict[str, int] = defaultdict(int)
    for status, host, count in _rows(
        "SELECT status, host, count(*) FROM browser_sessions_browsersession"
        " WHERE status = ANY(%s) GROUP BY status, host",
        [_live()],
    ):
        by_status[status] += count
        # A browser exists from the moment a worker records its host.
        if host:
            by_host[host] += count
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    since = now - timedelta(minutes=ACTIVITY_WINDOW_MINUTES)
    [(recent, finished, failed, errored, spent)] = _rows(
        """
        SELECT count(*),
               count(*) FILTER (WHERE status = ANY(%(finished)s) AND status <> 'cancelled'),
               count(*) FILTER (WHERE status = 'failed'),
               count(*) FILTER (WHERE status = 'errored'),
               (SELECT coalesce(-sum(amount), 0) FROM billing_ledgerentry
                 WHERE created_at >= %(today)s AND kind <> ALL(%(not_spend)s))
        FROM browser_sessions_action WHERE created_at >= %(since)s
        """,
        {
            "finished": [str(s) for s in FINISHED_ACTION_STATUSES],
            "today": today,
            "since": since,
            "not_spend": NOT_SPEND_KINDS,
        },
    )
    extra = [tile for provider in OPTIONAL_TILES if (tile := provider()) is not None]
    return Tiles(
        sessions_by_status=by_status,
        browsers_by_host=dict(sorted(by_host.items())),
        queue_depths=queue_depths(),
        workers=workers_seen(),
        actions_recent=recent,
        actions_per_minute=round(recent / ACTIVITY_WINDOW_MINUTES, 1),
        actions_finished_recent=finished,
        actions_failed_recent=failed,
        actions_errored_recent=errored,
        credits_spent_today=int(spent),
        extra=extra,
    )


# --- Charts ----------------------------------------------------------------------------------


def _buckets(chosen: Range, now: datetime) -> list[datetime]:
    step = chosen.step
    first = now - chosen.length
    first = _ORIGIN + ((first - _ORIGIN) // step) * step
    buckets = []
    at = first
    while at <= now:
        buckets.append(at)
        at += step
    return buckets


def _bucket_label(at: datetime, chosen: Range) -> str:
    return at.strftime("%m-%d" if chosen.step >= timedelta(days=1) else "%m-%d %H:%M")


def _series(
    rows: list[tuple[Any, ...]], buckets: list[datetime], *, scale: float = 1.0, empty: float | None = 0
) -> dict[str, list[float | None]]:
    """(bucket, name, value) rows as one list per name, `empty` in buckets without a row."""
    index = {at: i for i, at in enumerate(buckets)}
    out: dict[str, list[float | None]] = {}
    for at, name, value in rows:
        if at not in index:
            continue
        out.setdefault(str(name), [empty] * len(buckets))[index[at]] = round(float(value) * scale, 2)
    return dict(sorted(out.items()))


def charts_read_cached(*, range_key: str = "24h", now: datetime | None = None) -> dict[str, Any]:
    """charts_read, kept in Redis for OPS_CHARTS_CACHE_SECONDS for the 7 d and 30 d ranges.

    Those scan up to every action of the month (percentiles sort them all): seconds at a million
    actions on a busy machine (docs/benchmarks.md). A minute-old 30-day chart loses nothing;
    the 24 h range, the tiles and the live table are always read fresh.
    """
    ttl = settings.OPS_CHARTS_CACHE_SECONDS
    if range_key == "24h" or ttl <= 0:
        return charts_read(range_key=range_key, now=now)
    key = f"bf:ops:charts:{range_key}"
    try:
        cached = get_redis().get(key)
    except Exception:  # no cache without Redis; the page still renders
        cached = None
    if cached is not None:
        return dict(json.loads(cached))
    charts = charts_read(range_key=range_key, now=now)
    with contextlib.suppress(Exception):
        get_redis().set(key, json.dumps(charts), ex=ttl)
    return charts


def charts_read(*, range_key: str = "24h", now: datetime | None = None) -> dict[str, Any]:
    """The dashboard's charts over 24 h, 7 d or 30 d: six SQL statements."""
    now = now or timezone.now()
    chosen = RANGES[range_key]
    buckets = _buckets(chosen, now)
    p = {"step": chosen.step, "origin": _ORIGIN, "since": buckets[0], "now": now}
    labels = [_bucket_label(at, chosen) for at in buckets]

    sessions = _rows(
        """
        SELECT date_bin(%(step)s, created_at, %(origin)s), 'started', count(*)
          FROM browser_sessions_browsersession WHERE created_at >= %(since)s GROUP BY 1
        UNION ALL
        SELECT date_bin(%(step)s, ended_at, %(origin)s), 'ended: ' || ended_reason, count(*)
          FROM browser_sessions_browsersession WHERE ended_at >= %(since)s GROUP BY 1, ended_reason
        """,
        p,
    )
    # Minutes each session ran inside each bucket (overlap of [created, ended or now) with it).
    minutes = _rows(
        """
        WITH b AS (SELECT generate_series(%(since)s::timestamptz, %(now)s::timestamptz, %(step)s) AS at)
        SELECT b.at, 'session minutes',
               sum(extract(epoch FROM least(b.at + %(step)s, coalesce(s.ended_at, %(now)s))
                                      - greatest(b.at, s.created_at))) / 60.0
          FROM b JOIN browser_sessions_browsersession s
            ON s.created_at < b.at + %(step)s AND coalesce(s.ended_at, %(now)s) > b.at
         WHERE coalesce(s.ended_at, %(now)s) > %(since)s
         GROUP BY b.at
        """,
        p,
    )
    # Spend other than actions, from the ledger (session minutes, refunds; jobs once they exist).
    other_spend = _rows(
        """
        SELECT date_bin(%(step)s, created_at, %(origin)s), kind, -sum(amount)
          FROM billing_ledgerentry
         WHERE created_at >= %(since)s AND kind <> ALL(%(not_spend)s) AND kind <> 'action'
         GROUP BY 1, 2
        """,
        {**p, "not_spend": NOT_SPEND_KINDS},
    )
    # Actions in one scan for two charts: counts by type and status, and credits by type (an
    # action's ledger charge is its price, taken when accepted; what was refunded is a `refund`
    # line above). A join of the ledger with the actions cost 4x more at a million actions.
    by_type = _rows(
        """
        SELECT date_bin(%(step)s, created_at, %(origin)s), type, status, count(*), sum(price)
          FROM browser_sessions_action
         WHERE created_at >= %(since)s
         GROUP BY 1, 2, 3
        """,
        p,
    )
    latency = _rows(
        """
        SELECT date_bin(%(step)s, created_at, %(origin)s),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)),
               count(*)
          FROM browser_sessions_action
         WHERE created_at >= %(since)s AND started_at IS NOT NULL AND finished_at IS NOT NULL
         GROUP BY 1
        """,
        p,
    )
    top = _rows(
        """
        SELECT l.account_id, acc.name, -sum(l.amount) AS spent, count(*)
          FROM billing_ledgerentry l JOIN accounts_account acc ON acc.id = l.account_id
         WHERE l.created_at >= %(since)s AND l.kind <> ALL(%(not_spend)s)
         GROUP BY l.account_id, acc.name ORDER BY spent DESC, l.account_id LIMIT 10
        """,
        {**p, "not_spend": NOT_SPEND_KINDS},
    )

    types = sorted({t for _, t, _, _, _ in by_type})
    statuses = sorted({s for _, _, s, _, _ in by_type})
    by_type_status = {s: [0] * len(types) for s in statuses}
    action_credits: dict[tuple[datetime, str], int] = defaultdict(int)
    for at, t, s, n, price in by_type:
        by_type_status[s][types.index(t)] += n
        action_credits[(at, f"action: {t}")] += int(price or 0)
    credits = [(at, name, value) for (at, name), value in action_credits.items() if value] + other_spend
    # No actions in a bucket is no latency, not a latency of zero: a gap in the line.
    lat_p50 = _series([(at, "p50", v) for at, v, _, _ in latency], buckets, scale=1000, empty=None)
    lat_p95 = _series([(at, "p95", v) for at, _, v, _ in latency], buckets, scale=1000, empty=None)
    return {
        "range": chosen.key,
        "range_label": chosen.label,
        "computed_at": now.strftime("%Y-%m-%d %H:%M:%S"),
        "labels": labels,
        "sessions": _series(sessions, buckets),
        "session_minutes": _series(minutes, buckets),
        "credits": _series(credits, buckets),
        "action_types": types,
        "actions_by_status": by_type_status,
        "latency_ms": {**lat_p50, **lat_p95},
        "top_accounts": [
            {"account_id": a, "name": name, "spent": int(spent), "lines": n} for a, name, spent, n in top
        ],
    }


# --- Live sessions ---------------------------------------------------------------------------


def live_sessions_read(*, limit: int = 200) -> list[dict[str, Any]]:
    """Live sessions, newest first, each with its last action: one statement (LATERAL)."""
    rows = _rows(
        """
        SELECT s.id, s.status, s.account_id, acc.name, s.created_at, s.idle_expires_at, s.expires_at,
               s.host, la.type, la.status, la.created_at
          FROM browser_sessions_browsersession s
          JOIN accounts_account acc ON acc.id = s.account_id
          LEFT JOIN LATERAL (
                SELECT type, status, created_at FROM browser_sessions_action a
                 WHERE a.session_id = s.id ORDER BY a.id DESC LIMIT 1) la ON true
         WHERE s.status = ANY(%s)
         ORDER BY s.created_at DESC, s.id
         LIMIT %s
        """,
        [_live(), limit],
    )
    keys = [
        "id",
        "status",
        "account_id",
        "account_name",
        "created_at",
        "idle_expires_at",
        "expires_at",
        "host",
        "last_action_type",
        "last_action_status",
        "last_action_at",
    ]
    return [dict(zip(keys, row, strict=True)) for row in rows]


# --- One session -----------------------------------------------------------------------------


def session_timeline_read(*, session_id: str, limit: int = 500) -> dict[str, Any] | None:
    """The session, its actions (oldest first, with refunds) and its ledger lines: three statements."""
    session = BrowserSession.objects.select_related("account").filter(pk=session_id).first()
    if session is None:
        return None
    actions = _rows(
        """
        SELECT a.id, a.public_id, a.type, a.status, a.error, a.price, a.created_at,
               a.started_at, a.finished_at, a.result ->> 'screenshot_token'
          FROM browser_sessions_action a WHERE a.session_id = %s ORDER BY a.id LIMIT %s
        """,
        [session_id, limit],
    )
    keys = [
        "id",
        "public_id",
        "type",
        "status",
        "error",
        "price",
        "created_at",
        "started_at",
        "finished_at",
        "screenshot_token",
    ]
    timeline = []
    for row in actions:
        item = dict(zip(keys, row, strict=True))
        if item["started_at"] and item["finished_at"]:
            item["duration_ms"] = int((item["finished_at"] - item["started_at"]).total_seconds() * 1000)
        else:
            item["duration_ms"] = None
        timeline.append(item)
    ledger = list(LedgerEntry.objects.filter(session_id=session_id).order_by("id")[:limit])
    return {"session": session, "actions": timeline, "ledger": ledger}


# --- One account -----------------------------------------------------------------------------


def account_overview_read(
    *, account_id: int, range_key: str = "30d", now: datetime | None = None
) -> dict[str, Any] | None:
    """Balance over time, spend by kind, recent sessions (with action counts), keys: six statements."""
    account = Account.objects.select_related("plan", "balance").filter(pk=account_id).first()
    if account is None:
        return None
    now = now or timezone.now()
    chosen = RANGES[range_key]
    buckets = _buckets(chosen, now)
    p = {"account": account_id, "step": chosen.step, "origin": _ORIGIN, "since": buckets[0]}
    # The balance at the end of each bucket that has ledger lines; carried forward in between.
    closing = _rows(
        """
        SELECT DISTINCT ON (1) date_bin(%(step)s, created_at, %(origin)s), balance_after
          FROM billing_ledgerentry WHERE account_id = %(account)s AND created_at >= %(since)s
         ORDER BY 1, created_at DESC, id DESC
        """,
        p,
    )
    [(opening,)] = _rows(
        """
        SELECT (SELECT balance_after FROM billing_ledgerentry
                 WHERE account_id = %(account)s AND created_at < %(since)s
                 ORDER BY created_at DESC, id DESC LIMIT 1)
        """,
        p,
    )
    by_bucket = dict(closing)
    # None (a gap) until the account's first ledger line.
    balance: list[int | None] = []
    running = opening
    for at in buckets:
        running = by_bucket.get(at, running)
        balance.append(running)
    spend = _rows(
        """
        SELECT l.kind, CASE WHEN l.kind = 'action' THEN coalesce(a.type, '?') ELSE '' END,
               -sum(l.amount), count(*)
          FROM billing_ledgerentry l LEFT JOIN browser_sessions_action a ON a.id = l.action_id
         WHERE l.account_id = %(account)s AND l.created_at >= %(since)s AND l.kind <> ALL(%(not_spend)s)
         GROUP BY 1, 2 ORDER BY 3 DESC
        """,
        {**p, "not_spend": NOT_SPEND_KINDS},
    )
    recent = _rows(
        """
        SELECT s.id, s.status, s.ended_reason, s.created_at, s.ended_at, s.host,
               (SELECT count(*) FROM browser_sessions_action a WHERE a.session_id = s.id)
          FROM browser_sessions_browsersession s WHERE s.account_id = %(account)s
         ORDER BY s.created_at DESC LIMIT 50
        """,
        p,
    )
    session_keys = ["id", "status", "ended_reason", "created_at", "ended_at", "host", "action_count"]
    sessions = [dict(zip(session_keys, row, strict=True)) for row in recent]
    keys = list(ApiKey.objects.filter(account_id=account_id).order_by("-created_at"))
    return {
        "account": account,
        "range": chosen.key,
        "range_label": chosen.label,
        "labels": [_bucket_label(at, chosen) for at in buckets],
        "balance": balance,
        "spend": [
            {"kind": kind, "type": type_, "credits": int(credits), "lines": n}
            for kind, type_, credits, n in spend
        ],
        "sessions": sessions,
        "keys": keys,
    }
