"""Operator dashboard benchmark: page times and query counts over a million actions.

    bin/dev bench dashboard [--actions 1000000] [--sessions-per-action 50] [--accounts 200]
                            [--days 30] [--repeat 5] [--keep]

Seeds its own database `browserfleet_bench_dashboard` (dropped first, and at the end unless
--keep) in plain SQL (INSERT ... SELECT generate_series): `--accounts` accounts, one session per
`--sessions-per-action` actions spread over `--days` days (50 of them live), `--actions` actions
(types and statuses mixed, 3 % failed, 0.5 % errored, 5-500 ms run time) and one ledger line
per action plus one per started session minute. Then, in this process, renders each dashboard
page through Django's test client (the whole view and template, as a logged-in superuser) and
scrapes /metrics, `--repeat` times after one warm-up, counting queries.

No web server, worker or browser is involved: this measures what the pages cost PostgreSQL and
Django. Redis is read (queue lengths, heartbeats) from REDIS_URL; only the chart cache's two
keys are written (and deleted at the end).

Prints a Markdown table and writes JSON to bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATABASE = "browserfleet_bench_dashboard"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host=os.environ.get("POSTGRES_HOST", "127.0.0.1"),
        port=int(os.environ.get("POSTGRES_PORT", "5432")),
        user=os.environ.get("POSTGRES_USER", "postgres"),
        password=os.environ.get("POSTGRES_PASSWORD", ""),
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(sql)


SEED_SQL = """
-- Sessions: spread over the range, most ended, the newest 50 live.
INSERT INTO browser_sessions_browsersession
    (id, account_id, kind, status, ended_reason, error, created_at, started_at, ended_at,
     last_activity_at, expires_at, idle_expires_at, max_lifetime_seconds, inactivity_timeout_seconds,
     idle_timeout_enabled, display_width, display_height, display_scale, options, backend,
     webdriver_url, webdriver_session_id, host, profile_dir, main_tab_id, billed_minutes,
     proxy_bytes, proxy_billed_mb, browser_released_at)
SELECT 'comp_bench_' || g,
       (SELECT array_agg(id ORDER BY id) FROM accounts_account)[1 + (g * 7919) %% %(accounts)s],
       'browser',
       CASE WHEN g > %(sessions)s - 50 THEN 'running' ELSE 'terminated' END,
       CASE WHEN g > %(sessions)s - 50 THEN ''
            ELSE (ARRAY['user','user','user','idle','idle','max_lifetime','crashed','admin'])[1 + g %% 8] END,
       '',
       t.created, t.created + interval '700 milliseconds',
       CASE WHEN g > %(sessions)s - 50 THEN NULL ELSE t.created + interval '3 minutes' END,
       t.created + interval '2 minutes', t.created + interval '4 hours',
       t.created + interval '4 minutes', 14400, 120, true, 1024, 768, 1.0, '{}', 'local', '', 'wd' || g,
       'worker-' || (g %% 4), '', '', 3, 0, 0,
       CASE WHEN g > %(sessions)s - 50 THEN NULL ELSE t.created + interval '3 minutes 2 seconds' END
  FROM generate_series(1, %(sessions)s) g,
       LATERAL (SELECT now() - %(days)s * interval '1 day' * (1 - g::float / %(sessions)s)
                       - interval '5 minutes' AS created) t;

-- Actions: %(per)s per session, a few seconds apart, from the session's start.
INSERT INTO browser_sessions_action
    (public_id, session_id, account_id, type, params, status, error, executed_tab_id, request_id,
     price, created_at, started_at, finished_at)
SELECT 'act_bench_' || a, s.id, s.account_id,
       (ARRAY['click','navigate','screenshot','type','scroll','observe','html','wait'])[1 + a %% 8],
       '{}',
       CASE WHEN a %% 200 = 0 THEN 'errored' WHEN a %% 33 = 0 THEN 'failed' ELSE 'succeeded' END,
       CASE WHEN a %% 33 = 0 OR a %% 200 = 0 THEN 'bench error' ELSE '' END, '', '',
       1 + a %% 5,
       s.started_at + (a %% %(per)s) * interval '3 seconds',
       s.started_at + (a %% %(per)s) * interval '3 seconds' + interval '5 milliseconds',
       s.started_at + (a %% %(per)s) * interval '3 seconds'
           + (5 + (a::bigint * 7919 %% 500)) * interval '1 millisecond'
  FROM generate_series(0, %(actions)s - 1) a
  JOIN browser_sessions_browsersession s ON s.id = 'comp_bench_' || (1 + a / %(per)s);

-- The ledger: a charge per action, three session minutes per session.
INSERT INTO billing_ledgerentry
    (account_id, kind, amount, balance_after, reason, session_id, action_id, idempotency_key, created_at)
SELECT account_id, 'action', -price, 0, '', session_id, id, 'bench:action:' || id, created_at
  FROM browser_sessions_action;
INSERT INTO billing_ledgerentry
    (account_id, kind, amount, balance_after, reason, session_id, action_id, idempotency_key, created_at)
SELECT s.account_id, 'session_time', -1, 0, '', s.id, NULL, 'bench:minute:' || s.id || ':' || m,
       s.created_at + m * interval '1 minute'
  FROM browser_sessions_browsersession s, generate_series(0, 2) m;
"""


def seed(args: argparse.Namespace) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection

    from accounts.services import account_create

    sessions = max(50, args.actions // args.per_session)
    started = time.monotonic()
    for i in range(args.accounts):
        account_create(name=f"bench-{i:03d}", plan_name="pro", credits=1_000_000)
    User.objects.create_superuser("bench", "bench@example.com", "bench")
    with connection.cursor() as cursor:
        cursor.execute(
            SEED_SQL,
            {
                "accounts": args.accounts,
                "sessions": sessions,
                "actions": args.actions,
                "per": args.per_session,
                "days": args.days,
            },
        )
        cursor.execute("ANALYZE")
        cursor.execute(
            "SELECT (SELECT count(*) FROM browser_sessions_action),"
            " (SELECT count(*) FROM billing_ledgerentry),"
            " (SELECT count(*) FROM browser_sessions_browsersession)"
        )
        actions, ledger, session_rows = cursor.fetchone()
    seconds = round(time.monotonic() - started, 1)
    log(f"seeded {actions} actions, {ledger} ledger lines, {session_rows} sessions in {seconds} s")
    return {"actions": actions, "ledger_lines": ledger, "sessions": session_rows, "seed_seconds": seconds}


def time_pages(repeat: int) -> list[dict[str, Any]]:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.METRICS_TOKEN = "bench"  # noqa: S105  (this process's own scrape)
    client = Client()
    client.force_login(User.objects.get(username="bench"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT session_id, count(*) FROM browser_sessions_action GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
        )
        busy_session = cursor.fetchone()[0]
        cursor.execute(
            "SELECT account_id FROM billing_ledgerentry GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
        )
        busy_account = cursor.fetchone()[0]
    # (name, url, headers, OPS_CHARTS_CACHE_SECONDS): 7 d and 30 d both computed on every load
    # and served from the chart cache (filled by the warm-up).
    pages = [
        ("dashboard 24h", "/admin/ops/?range=24h", {}, 0),
        ("dashboard 7d, computed", "/admin/ops/?range=7d", {}, 0),
        ("dashboard 30d, computed", "/admin/ops/?range=30d", {}, 0),
        ("dashboard 7d, chart cache", "/admin/ops/?range=7d", {}, 600),
        ("dashboard 30d, chart cache", "/admin/ops/?range=30d", {}, 600),
        ("session page", f"/admin/ops/sessions/{busy_session}/", {}, 0),
        ("account page 30d", f"/admin/ops/accounts/{busy_account}/", {}, 0),
        ("/metrics", "/metrics", {"HTTP_AUTHORIZATION": "Bearer bench"}, 0),
    ]
    from project.redis import get_redis

    get_redis().delete("bf:ops:charts:7d", "bf:ops:charts:30d")
    results = []
    for name, url, headers, cache_seconds in pages:
        settings.OPS_CHARTS_CACHE_SECONDS = cache_seconds
        client.get(url, **headers)  # warm-up: connection, templates, PostgreSQL's caches
        times = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url, **headers)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        results.append(
            {
                "page": name,
                "url": url,
                "median_ms": round(statistics.median(times), 1),
                "min_ms": round(min(times), 1),
                "max_ms": round(max(times), 1),
                "queries": len(queries),
                "bytes": len(response.content),
            }
        )
        log(f"{name}: median {results[-1]['median_ms']} ms, {len(queries)} queries")
    get_redis().delete("bf:ops:charts:7d", "bf:ops:charts:30d")
    return results


def _commit() -> str:
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "-uno"], cwd=REPO, capture_output=True, text=True
        )
    except OSError:
        return os.environ.get("BENCH_SOURCE_COMMIT", "unknown")
    return head.strip() + (" (dirty)" if dirty.stdout.strip() else "")


def add_seed_arguments(parser: argparse.ArgumentParser) -> None:
    """The seed's size and the database's lifecycle (this bench's and bench/periodic_scans.py's)."""
    parser.add_argument("--actions", type=int, default=1_000_000)
    parser.add_argument("--per-session", type=int, default=50, help="actions per session")
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database for another run")
    parser.add_argument("--reuse", action="store_true", help="time an existing --keep database, no seeding")


@contextlib.contextmanager
def seeded_database(
    database: str, args: argparse.Namespace, *, then_seed: Callable[[], None] | None = None
) -> Iterator[dict[str, Any]]:
    """A database of its own, made (dropped first), migrated and seeded unless `--reuse`; Django
    set up on it; dropped at the end unless `--keep`. Yields what was seeded. The caller sets the
    rest of the environment before (Django reads it at setup)."""
    os.environ["POSTGRES_DB"] = database
    os.environ.setdefault("BROWSERFLEET_ENV", "test")  # plain static files storage, no collectstatic
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    if not args.reuse:
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _admin(f'CREATE DATABASE "{database}"')
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    try:
        if args.reuse:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM browser_sessions_action")
                seeded: dict[str, Any] = {"reused": True, "actions": cursor.fetchone()[0]}
        else:
            call_command("migrate", verbosity=0)
            seeded = seed(args)
            if then_seed is not None:
                then_seed()
        yield seeded
    finally:
        connection.close()
        if not args.keep:
            _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def write_report(path: Path, args: argparse.Namespace, seeded: dict[str, Any], **results: Any) -> None:
    """The run as JSON: when, which commit, the machine, the arguments, the seed and `results`."""
    path.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(),
                "commit": _commit(),
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()},
                "args": vars(args),
                "seed": seeded,
                **results,
            },
            indent=2,
        )
        + "\n"
    )
    log(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_seed_arguments(parser)
    args = parser.parse_args()

    with seeded_database(DATABASE, args) as seeded:
        from django.test.utils import setup_test_environment

        setup_test_environment()  # lets the test client's host through ALLOWED_HOSTS
        results = time_pages(args.repeat)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nDashboard pages over {seeded.get('actions', '?')} actions ({args.repeat} runs each;")
    print(f"load average {load} on {os.cpu_count()} CPUs at the end)\n")
    print("| page | median ms | min ms | max ms | queries |")
    print("|---|---:|---:|---:|---:|")
    for row in results:
        print(
            f"| {row['page']} | {row['median_ms']} | {row['min_ms']} | {row['max_ms']} | {row['queries']} |"
        )
    write_report(REPO / "bench" / "results" / "dashboard.json", args, seeded, pages=results)


if __name__ == "__main__":
    main()
