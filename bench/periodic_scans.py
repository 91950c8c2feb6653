"""Beat's periodic tasks over a million actions: time, queries and plans when little is due.

    bin/dev bench periodic_scans [--actions 1000000] [--repeat 5] [--keep] [--reuse]

The issue's rule: a periodic scan (sweep, reconcile, redelivery, billing, purges) costs
O(work due), not O(table). This seeds the same database as `bench/dashboard.py` (its own,
`browserfleet_bench_periodic`: 200 accounts, one session per 50 actions over 30 days, the
newest 50 live and overdue, `--actions` actions, a ledger line per action and per session
minute), then calls every task of Beat's schedule (`PERIODIC_TASKS`, project/celery.py) in this
process: once to settle what the seed left due (the 50 overdue sessions), then `--repeat` times
with nothing due, timing each call and capturing its SQL. Every statement is EXPLAINed (no
ANALYZE, so nothing runs twice) and a sequential scan of a table with more than 10,000 rows is
reported: that is a scan whose cost grows with the table instead of the work.

Run it twice with different `--actions` to see the growth directly (the figures in
docs/benchmarks.md). Tasks that would reach a browser or a worker host only find none: the seed's
hosts are names without heartbeats, so the first sweep ends their sessions as a dead host's.
One session in ten is marked as proxied through the operator's pool and one in ten persistent.
Messages the tasks send go to this benchmark's Redis database (14) and are flushed at the end.

Prints a Markdown table and writes JSON to bench/results/periodic_scans.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from dashboard import add_seed_arguments, log, seeded_database, write_report  # noqa: E402

DATABASE = "browserfleet_bench_periodic"
REDIS_DB = 14
BIG_TABLE_ROWS = 10_000


def _seq_scans(plan: Any, sizes: dict[str, int]) -> list[str]:
    """The relations of sequential scans in an EXPLAIN (FORMAT JSON) plan with > BIG_TABLE_ROWS rows."""
    found: list[str] = []
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("Node Type") == "Seq Scan":
                relation = node.get("Relation Name", "?")
                if sizes.get(relation, 0) > BIG_TABLE_ROWS:
                    found.append(f"{relation} ({sizes[relation]:,} rows)")
            stack.extend(node.get("Plans", []))
            if "Plan" in node:
                stack.append(node["Plan"])
    return found


def _explain(sql: str, sizes: dict[str, int]) -> list[str]:
    from django.db import connection

    head = sql.lstrip().split(None, 1)[0].upper()
    if head not in {"SELECT", "UPDATE", "DELETE", "INSERT", "WITH"}:
        return []
    with connection.cursor() as cursor:
        try:
            cursor.execute("SAVEPOINT bench_explain")
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
            plan = cursor.fetchone()[0]
            cursor.execute("RELEASE SAVEPOINT bench_explain")
        except Exception as exc:  # a statement that cannot be explained on its own (cursor, LOCK)
            cursor.execute("ROLLBACK TO SAVEPOINT bench_explain")
            return [f"(not explained: {type(exc).__name__})"]
    return _seq_scans(plan, sizes)


def _table_sizes() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples::bigint FROM pg_class WHERE relkind = 'r'")
        return {name: int(rows) for name, rows in cursor.fetchall()}


def _seed_options() -> None:
    """One session in ten through the operator's proxy pool and one in ten persistent (both
    have scans of their own in browsers_reconcile), as sealed configuration and options."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE browser_sessions_browsersession SET proxy_config = '\\x00'::bytea,"
            " options = options || '{\"use_advanced_proxy\": true}' WHERE id LIKE '%1'"
        )
        cursor.execute(
            "UPDATE browser_sessions_browsersession SET options = options || '{\"persistent\": true}'"
            " WHERE id LIKE '%2'"
        )
        cursor.execute("ANALYZE browser_sessions_browsersession")


def time_tasks(repeat: int) -> list[dict[str, Any]]:
    from celery import current_app
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    import workers.job_tasks
    import workers.tasks
    import workers.webhook_tasks  # noqa: F401
    from project.celery import PERIODIC_TASKS

    sizes = _table_sizes()
    results = []
    for task_name, _period, description in PERIODIC_TASKS:
        task = current_app.tasks[task_name]
        started = time.perf_counter()
        first = task()  # settles what the seed left due
        first_ms = (time.perf_counter() - started) * 1000
        times = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                task()
                times.append((time.perf_counter() - started) * 1000)
        scans: list[str] = []
        with transaction.atomic():
            for query in queries.captured_queries:
                for scan in _explain(query["sql"], sizes):
                    if scan not in scans:
                        scans.append(scan)
        results.append(
            {
                "task": task_name.rsplit(".", 1)[1],
                "description": description,
                "first_ms": round(first_ms, 1),
                "first_result": first if isinstance(first, (int, dict)) else str(first),
                "median_ms": round(statistics.median(times), 1),
                "max_ms": round(max(times), 1),
                "queries": len(queries.captured_queries),
                "big_seq_scans": scans,
            }
        )
        log(f"{task_name}: median {results[-1]['median_ms']} ms, {len(queries)} queries, seq scans {scans}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_seed_arguments(parser)
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "periodic_scans.json"))
    args = parser.parse_args()

    os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
    os.environ["BROWSER_PROFILE_ROOT"] = tempfile.mkdtemp(prefix="bf-bench-periodic-")
    os.environ["BROWSER_POOL_SIZE"] = "0"  # no warm browsers to refill: reconcile only scans
    with seeded_database(DATABASE, args, then_seed=_seed_options) as seeded:
        from project.redis import get_redis

        get_redis().flushdb()
        try:
            results = time_tasks(args.repeat)
        finally:
            get_redis().flushdb()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nBeat's periodic tasks over {seeded.get('actions', '?')} actions ({args.repeat} runs each")
    print(f"with nothing due; load average {load} on {os.cpu_count()} CPUs at the end)\n")
    print("| task | first run ms | median ms | max ms | queries | seq scans of big tables |")
    print("|---|---:|---:|---:|---:|---|")
    for row in results:
        scans = ", ".join(row["big_seq_scans"]) or "none"
        print(
            f"| {row['task']} | {row['first_ms']} | {row['median_ms']} | {row['max_ms']} "
            f"| {row['queries']} | {scans} |"
        )
    write_report(Path(args.output), args, seeded, tasks=results)


if __name__ == "__main__":
    main()
