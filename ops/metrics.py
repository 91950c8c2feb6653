"""GET /metrics: Prometheus text format, computed at scrape time from PostgreSQL and Redis.

Every figure is read from durable state when Prometheus asks, so any gunicorn process answers
the same and nothing is lost on restart (docs/decisions.md, "Metrics from rows"). Counters are
totals over rows that are never deleted (sessions, actions, ledger lines); histograms are
cumulative over all finished actions and started sessions, so rate() and histogram_quantile()
work as usual. Six SQL statements and one Redis round trip per scrape (bench/dashboard.py).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from accounts.lockout import AUTH_FAILURES_TOTAL_KEY, AUTH_LOCKOUTS_TOTAL_KEY, client_ip
from ops.selectors import queue_depth_commands, queue_names
from project.exceptions import error_body
from project.heartbeat import HEARTBEATS_KEY
from project.redis import get_redis
from sessions.models import LIVE_STATUSES

ACTION_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CREATE_LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)


def _rows(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


# Each row's latency goes to the first histogram bound at or above it (`first`, an index into
# the bounds; len(bounds) for +Inf only; NULL when it has none). width_bucket() over the negated
# bounds counts the bounds >= the value: one expression per row, where a FILTER per bound cost
# 12 (1.5 s against 0.4 s per scrape at a million actions; docs/benchmarks.md).
_SESSIONS_SQL = """
    SELECT status, ended_reason,
           %(n)s - width_bucket(-date_part('epoch', started_at - created_at), %(neg)s::float8[]),
           count(*), coalesce(sum(date_part('epoch', started_at - created_at)), 0)
      FROM browser_sessions_browsersession GROUP BY 1, 2, 3
"""
_ACTIONS_SQL = """
    SELECT type, status,
           %(n)s - width_bucket(-date_part('epoch', finished_at - started_at), %(neg)s::float8[]),
           count(*), coalesce(sum(price), 0), coalesce(sum(date_part('epoch', finished_at - started_at)), 0)
      FROM browser_sessions_action GROUP BY 1, 2, 3
"""


def _bounds(bounds: tuple[float, ...]) -> dict[str, Any]:
    return {"n": len(bounds), "neg": sorted(-bound for bound in bounds)}


def _observe(series: list[float], first: int | None, count: int, seconds: float) -> None:
    """Add `count` observations of total `seconds` whose first bucket is `first` to
    [count, sum, cumulative count per bound...]."""
    if first is None:
        return
    series[0] += count
    series[1] += seconds
    for i in range(2 + first, len(series)):
        series[i] += count


def _histogram(
    name: str,
    doc: str,
    label_names: list[str],
    series: dict[tuple[str, ...], list[float]],
    bounds: tuple[float, ...],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=label_names)
    for labels, (count, total, *cumulative) in sorted(series.items()):
        buckets = [(str(bound), value) for bound, value in zip(bounds, cumulative, strict=True)]
        buckets.append(("+Inf", count))
        family.add_metric(list(labels), buckets, sum_value=total)
    return family


class FleetCollector(Collector):
    def collect(self) -> Iterator[Any]:
        yield from self._sessions()
        yield from self._actions()
        yield from self._credits()
        yield from self._redis()

    def _sessions(self) -> Iterator[Any]:
        live = GaugeMetricFamily("browserfleet_sessions_live", "Live sessions by status.", labels=["status"])
        ended = CounterMetricFamily(
            "browserfleet_sessions_ended", "Sessions ended, by ended_reason.", labels=["reason"]
        )
        created = CounterMetricFamily("browserfleet_sessions_created", "Sessions created.")
        by_status: dict[str, int] = {str(s): 0 for s in LIVE_STATUSES}
        by_reason: dict[str, int] = defaultdict(int)
        latency = [0.0] * (2 + len(CREATE_LATENCY_BUCKETS))
        total = 0
        for status, reason, first, count, seconds in _rows(_SESSIONS_SQL, _bounds(CREATE_LATENCY_BUCKETS)):
            total += count
            if status in by_status:
                by_status[status] += count
            elif reason:
                by_reason[reason] += count
            _observe(latency, first, count, float(seconds))
        for status, count in by_status.items():
            live.add_metric([status], count)
        for reason, count in sorted(by_reason.items()):
            ended.add_metric([reason], count)
        created.add_metric([], total)
        yield live
        yield ended
        yield created
        yield _histogram(
            "browserfleet_session_create_latency_seconds",
            "From a session's create request to its browser being ready.",
            [],
            {(): latency},
            CREATE_LATENCY_BUCKETS,
        )
        browsers = GaugeMetricFamily(
            "browserfleet_browsers", "Browsers of live sessions, by worker host.", labels=["host"]
        )
        for host, count in _rows(
            "SELECT host, count(*) FROM browser_sessions_browsersession"
            " WHERE status = ANY(%s) AND host <> '' GROUP BY host ORDER BY host",
            [[str(s) for s in LIVE_STATUSES]],
        ):
            browsers.add_metric([host], count)
        yield browsers

    def _actions(self) -> Iterator[Any]:
        actions = CounterMetricFamily(
            "browserfleet_actions", "Actions accepted, by type and current status.", labels=["type", "status"]
        )
        priced = CounterMetricFamily(
            "browserfleet_action_credits",
            "Credits priced on actions when accepted, by type.",
            labels=["type"],
        )
        latency: dict[tuple[str, ...], list[float]] = {}
        price_by_type: dict[str, int] = defaultdict(int)
        by_type_status: dict[tuple[str, str], int] = defaultdict(int)
        for type_, status, first, count, price, seconds in _rows(
            _ACTIONS_SQL, _bounds(ACTION_LATENCY_BUCKETS)
        ):
            by_type_status[(type_, status)] += count
            price_by_type[type_] += int(price)
            if first is not None:
                series = latency.setdefault((type_,), [0.0] * (2 + len(ACTION_LATENCY_BUCKETS)))
                _observe(series, first, count, float(seconds))
        for (type_, status), count in sorted(by_type_status.items()):
            actions.add_metric([type_, status], count)
        for type_, price in sorted(price_by_type.items()):
            priced.add_metric([type_], price)
        yield actions
        yield priced
        yield _histogram(
            "browserfleet_action_latency_seconds",
            "Time an action ran on its worker (started to finished), by type.",
            ["type"],
            latency,
            ACTION_LATENCY_BUCKETS,
        )

    def _credits(self) -> Iterator[Any]:
        charged = CounterMetricFamily(
            "browserfleet_credits_charged", "Credits taken by ledger lines, by kind.", labels=["kind"]
        )
        added = CounterMetricFamily(
            "browserfleet_credits_added", "Credits given by ledger lines, by kind.", labels=["kind"]
        )
        for kind, out, in_ in _rows(
            "SELECT kind, coalesce(sum(-amount) FILTER (WHERE amount < 0), 0),"
            " coalesce(sum(amount) FILTER (WHERE amount > 0), 0)"
            " FROM billing_ledgerentry GROUP BY kind ORDER BY kind"
        ):
            charged.add_metric([kind], int(out))
            added.add_metric([kind], int(in_))
        yield charged
        yield added
        [(accounts, credits)] = _rows("SELECT count(*), coalesce(sum(credits), 0) FROM billing_balance")
        balance = GaugeMetricFamily("browserfleet_balance_credits", "Sum of all accounts' balances.")
        balance.add_metric([], int(credits))
        yield balance
        yield GaugeMetricFamily("browserfleet_accounts", "Accounts with a balance.", value=accounts)

    def _redis(self) -> Iterator[Any]:
        import time

        up = GaugeMetricFamily("browserfleet_redis_up", "1 when Redis answered this scrape.")
        names = queue_names()
        try:
            pipe = get_redis().pipeline(transaction=False)
            depths_of = queue_depth_commands(pipe, names)
            pipe.hgetall(HEARTBEATS_KEY)
            pipe.get(AUTH_FAILURES_TOTAL_KEY)
            pipe.get(AUTH_LOCKOUTS_TOTAL_KEY)
            *lengths, beats, failures, lockouts = pipe.execute()
            depths = depths_of(lengths)
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        queues = GaugeMetricFamily(
            "browserfleet_queue_depth",
            "Tasks waiting in each Celery queue (for an actions queue, with its drain requests).",
            labels=["queue"],
        )
        for name, depth in zip(names, depths, strict=True):
            queues.add_metric([name], depth)
        yield queues
        now = time.time()
        ages = GaugeMetricFamily(
            "browserfleet_worker_heartbeat_age_seconds",
            "Seconds since each worker's heartbeat.",
            labels=["worker"],
        )
        online = 0
        for worker, at in sorted(beats.items()):
            age = max(0.0, now - float(at))
            ages.add_metric([worker.decode()], round(age, 3))
            online += age <= settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS
        yield ages
        yield GaugeMetricFamily(
            "browserfleet_workers_online", "Workers with a recent heartbeat.", value=online
        )
        yield CounterMetricFamily(
            "browserfleet_auth_failures", "Failed API authentications.", value=int(failures or 0)
        )
        yield CounterMetricFamily(
            "browserfleet_auth_lockouts",
            "Client addresses locked out after repeated failures.",
            value=int(lockouts or 0),
        )


_registry = CollectorRegistry(auto_describe=False)
_registry.register(FleetCollector())


@functools.cache
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def metrics_reader(request: HttpRequest) -> bool:
    """Whether the request may read metrics (and /readyz's details): the token or an allowed CIDR."""
    return _refusal(request) is None


def _refusal(request: HttpRequest) -> JsonResponse | None:
    """None when the request may read metrics; else the 401/403 answer."""
    token = settings.METRICS_TOKEN
    scheme, _, sent = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    sent = sent.strip()
    if token and scheme.lower() == "bearer" and hmac.compare_digest(sent.encode(), token.encode()):
        return None
    networks = _networks(tuple(settings.METRICS_ALLOW_CIDRS))
    if networks:
        try:
            address = ipaddress.ip_address(client_ip(request))
        except ValueError:
            address = None
        if address is not None and any(address in network for network in networks):
            return None
    if not token and not networks:
        detail, code, status = (
            "Metrics are disabled: set METRICS_TOKEN or METRICS_ALLOW_CIDRS.",
            "metrics_disabled",
            403,
        )
    elif token and (sent or not networks):
        detail, code, status = "Send 'Authorization: Bearer <METRICS_TOKEN>'.", "unauthenticated", 401
    else:
        detail, code, status = "This address may not read metrics.", "forbidden", 403
    response = JsonResponse(error_body(status_code=status, code=code, detail=detail), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    try:
        payload = generate_latest(_registry)
    except DatabaseError as exc:
        body = error_body(
            status_code=503, code="unavailable", detail=f"PostgreSQL did not answer: {exc}"[:300]
        )
        return JsonResponse(body, status=503)
    return HttpResponse(payload, content_type=CONTENT_TYPE_LATEST)
