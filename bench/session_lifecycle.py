"""Session lifecycle benchmark: create-to-ready latency and idle-sweep lateness.

    bin/dev bench session_lifecycle [--creates 20] [--idle-sessions 10] [--sweep-interval 5] ...

a) Create-to-ready: `--creates` sequential `POST /v1/computers` (the API answers 201 once the
   browser is ready), each followed by `DELETE` (which answers once the browser is gone). The
   client-side round trips are timed; the rows add the worker's share (created_at -> started_at).
   `--warmup` creates before them are not counted.
b) Idle sweep lateness: `--idle-sessions` sessions with `inactivity_timeout_seconds`
   `--idle-timeout` (2), each on its own enterprise account (a create ends the expired sessions
   of its own account, which would hide the sweep), never touched again. The database is polled
   (a request would end the session itself) until all are terminated; per session,
   `ended_at - idle_expires_at` is how late the sweep ended it. Run once with
   SESSION_SWEEP_INTERVAL_SECONDS=`--sweep-interval` (5, the production default) and once with
   `--fast-sweep-interval` (1; 0 skips it), each on a fresh stack.

Prints a Markdown table and writes JSON to bench/results/session_lifecycle.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from harness import (
    REPO,
    Stack,
    loadavg,
    log,
    report_header,
    report_write,
    running_stack,
    summary,
)

HTTP_TIMEOUT = 60


def seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds()


def bench_create(stack: Stack, *, creates: int, warmup: int) -> dict[str, Any]:
    key = stack.make_account(plan="enterprise")
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    url = f"{stack.base_url}/v1/computers"
    post_times: list[float] = []
    delete_times: list[float] = []
    ids: list[str] = []
    answered_at: dict[str, datetime] = {}
    failures: list[str] = []
    load_before = loadavg()
    for i in range(warmup + creates):
        counted = i >= warmup
        started = time.perf_counter()
        try:
            reply = http.post(url, json={}, timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            failures.append(f"POST: {exc}")
            continue
        post_seconds = time.perf_counter() - started
        if reply.status_code != 201:
            failures.append(f"POST {reply.status_code}: {reply.text[:200]}")
            continue
        session_id = reply.json()["id"]
        started = time.perf_counter()
        try:
            deleted = http.delete(f"{url}/{session_id}", timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            failures.append(f"DELETE: {exc}")
            continue
        delete_seconds = time.perf_counter() - started
        answered_at[session_id] = datetime.now(UTC)
        if deleted.status_code != 200:
            failures.append(f"DELETE {deleted.status_code}: {deleted.text[:200]}")
            continue
        if counted:
            post_times.append(post_seconds)
            delete_times.append(delete_seconds)
            ids.append(session_id)
        label = f"create {i + 1 - warmup}" if counted else "warmup create"
        log(f"{label}: POST {post_seconds:.3f}s, DELETE {delete_seconds:.3f}s")
        if len(failures) > max(3, creates // 4):
            raise RuntimeError(f"too many failed creates: {failures}")
    rows = stack.db_query(
        "SELECT id, created_at, started_at, ended_at, browser_released_at"
        " FROM browser_sessions_browsersession WHERE id = ANY(%s)",
        [ids],
    )
    worker_start = [s for _, created, started, _, _ in rows if (s := seconds(started, created)) is not None]
    # DELETE waits (bounded) until the browser is gone: check it did, on the same clock.
    released_before_reply = sum(1 for row in rows if row[4] is not None and row[4] <= answered_at[row[0]])
    return {
        "creates": creates,
        "warmup": warmup,
        "post_seconds": summary(post_times),
        "delete_seconds": summary(delete_times),
        "worker_start_seconds": summary(worker_start),
        "released_before_delete_answered": released_before_reply,
        "failures": failures,
        "samples": {
            "post": [round(x, 4) for x in post_times],
            "delete": [round(x, 4) for x in delete_times],
        },
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


# --- b) idle sweep lateness -------------------------------------------------------------------
def bench_idle_sweep(stack: Stack, *, sessions: int, idle_timeout: int, interval: int) -> dict[str, Any]:
    keys = [stack.make_account(plan="enterprise") for _ in range(sessions)]
    url = f"{stack.base_url}/v1/computers"
    ids: list[str] = []
    create_failures: list[str] = []
    load_before = loadavg()
    for key in keys:
        try:
            reply = requests.post(
                url,
                json={"inactivity_timeout_seconds": idle_timeout},
                headers={"Authorization": f"Bearer {key}"},
                timeout=HTTP_TIMEOUT,
            )
        except requests.RequestException as exc:
            create_failures.append(f"POST: {exc}")
            continue
        if reply.status_code == 201:
            ids.append(reply.json()["id"])
        else:
            # A 503 can mean the sweep ended it while its browser was still starting.
            create_failures.append(f"POST {reply.status_code}: {reply.text[:200]}")
    log(f"sweep {interval}s: {len(ids)} idle sessions created; polling the database")
    # Generous bound: the last session's idle deadline, a few sweep periods, and the stop tasks.
    deadline = time.monotonic() + idle_timeout + 3 * interval + 60
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        rows = stack.db_query(
            "SELECT id, status, ended_reason, started_at, idle_expires_at, ended_at, browser_released_at"
            " FROM browser_sessions_browsersession WHERE id = ANY(%s)",
            [ids],
        )
        if all(row[1] == "terminated" and row[6] is not None for row in rows):
            break
        time.sleep(0.25)
    not_ended = [row[0] for row in rows if row[1] != "terminated"]
    lateness: list[float] = []
    release: list[float] = []
    reasons: dict[str, int] = {}
    per_session = []
    for session_id, status, reason, started_at, idle_expires_at, ended_at, released_at in rows:
        reasons[reason or status] = reasons.get(reason or status, 0) + 1
        late = seconds(ended_at, idle_expires_at)
        lag = seconds(released_at, ended_at)
        if reason == "idle" and late is not None:
            lateness.append(late)
            if lag is not None:
                release.append(lag)
        per_session.append(
            {
                "id": session_id,
                "ended_reason": reason,
                "lateness_seconds": None if late is None else round(late, 4),
                "release_seconds": None if lag is None else round(lag, 4),
                "ready_to_idle_deadline_seconds": seconds(idle_expires_at, started_at),
            }
        )
    return {
        "sweep_interval_seconds": interval,
        "idle_timeout_seconds": idle_timeout,
        "sessions": sessions,
        "lateness_seconds": summary(lateness),
        "release_after_end_seconds": summary(release),
        "ended_reasons": reasons,
        "not_ended_in_time": not_ended,
        "create_failures": create_failures,
        "per_session": per_session,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


# --- report -----------------------------------------------------------------------------------
def fmt(value: float | int | None, unit: str = "s") -> str:
    return "n/a" if value is None else f"{value:.3f} {unit}".rstrip()


def row(label: str, stats: dict[str, Any]) -> str:
    cells = [label, str(stats["n"]), *(fmt(stats[k]) for k in ("median", "p90", "min", "max"))]
    return "| " + " | ".join(cells) + " |"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Session lifecycle, {results['date']}, {results['machine']['nproc']} CPUs, "
        f"{results['machine']['chromium']}",
        "",
        "| measurement | n | median | p90 | min | max |",
        "|---|---|---|---|---|---|",
    ]
    create = results.get("create")
    if create:
        lines.append(row("`POST /v1/computers` round trip (create to ready)", create["post_seconds"]))
        lines.append(
            row("- of which the worker's start (created_at to started_at)", create["worker_start_seconds"])
        )
        lines.append(row("`DELETE /v1/computers/{id}` round trip (browser gone)", create["delete_seconds"]))
    for sweep in results.get("idle_sweep", []):
        interval = sweep["sweep_interval_seconds"]
        lines.append(
            row(
                f"idle sweep lateness (ended_at - idle_expires_at), sweep interval {interval} s",
                sweep["lateness_seconds"],
            )
        )
        lines.append(
            row(
                f"- browser released after the idle end, interval {interval}",
                sweep["release_after_end_seconds"],
            )
        )
    problems = []
    if create and create["released_before_delete_answered"] != create["delete_seconds"]["n"]:
        problems.append(
            f"only {create['released_before_delete_answered']} of {create['delete_seconds']['n']} browsers"
            " were released when their DELETE answered"
        )
    if create and create["failures"]:
        problems.append(f"create failures: {create['failures']}")
    for sweep in results.get("idle_sweep", []):
        if sweep["create_failures"] or sweep["not_ended_in_time"]:
            problems.append(
                f"sweep {sweep['sweep_interval_seconds']}s: create failures {sweep['create_failures']}, "
                f"not ended in time {sweep['not_ended_in_time']}"
            )
        if set(sweep["ended_reasons"]) - {"idle"}:
            problems.append(
                f"sweep {sweep['sweep_interval_seconds']}s: ended reasons {sweep['ended_reasons']}"
            )
    if results.get("leaked_browser_processes"):
        problems.append(f"browser processes killed at teardown: {results['leaked_browser_processes']}")
    lines += [
        "",
        f"Load average (1/5/15 min) at start: {results['loadavg_start']}, at end: {results['loadavg_end']}",
    ]
    lines += [f"- {problem}" for problem in problems]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--creates", type=int, default=20, help="counted sequential creates (default 20)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted creates first (default 1)")
    parser.add_argument("--idle-sessions", type=int, default=10, help="idle sessions per sweep run (10)")
    parser.add_argument("--idle-timeout", type=int, default=2, help="their inactivity_timeout_seconds (2)")
    parser.add_argument("--sweep-interval", type=int, default=5, help="SESSION_SWEEP_INTERVAL_SECONDS (5)")
    parser.add_argument(
        "--fast-sweep-interval", type=int, default=1, help="second sweep run's interval; 0 skips it (1)"
    )
    parser.add_argument(
        "--output", type=Path, default=REPO / "bench" / "results" / "session_lifecycle.json", help="JSON file"
    )
    args = parser.parse_args()
    if args.creates < 1 or args.warmup < 0 or args.idle_sessions < 1 or args.idle_timeout < 1:
        parser.error("--creates, --idle-sessions and --idle-timeout must be positive, --warmup not negative")
    if args.sweep_interval < 1 or args.fast_sweep_interval < 0:
        parser.error("--sweep-interval must be at least 1, --fast-sweep-interval at least 0")

    results: dict[str, Any] = {
        **report_header("session_lifecycle"),
        "config": {
            "web": "gunicorn + uvicorn (ASGI) 2 workers x 16 API threads",
            "worker": "celery worker -Q lifecycle,actions,batch -c 4",
            "browser_backend": "local",
            **{k: v for k, v in vars(args).items() if k != "output"},
        },
        "idle_sweep": [],
        "leaked_browser_processes": [],
    }
    log(f"load average {results['loadavg_start']} on {results['machine']['nproc']} CPUs")
    overrides = {"SESSION_SWEEP_INTERVAL_SECONDS": str(args.sweep_interval)}
    with running_stack(name="session_lifecycle", env_overrides=overrides) as stack:
        results["create"] = bench_create(stack, creates=args.creates, warmup=args.warmup)
        results["idle_sweep"].append(
            bench_idle_sweep(
                stack,
                sessions=args.idle_sessions,
                idle_timeout=args.idle_timeout,
                interval=args.sweep_interval,
            )
        )
    results["leaked_browser_processes"] += stack.leaked
    if args.fast_sweep_interval:
        overrides = {"SESSION_SWEEP_INTERVAL_SECONDS": str(args.fast_sweep_interval)}
        with running_stack(name="session_lifecycle_fast_sweep", env_overrides=overrides) as stack:
            results["idle_sweep"].append(
                bench_idle_sweep(
                    stack,
                    sessions=args.idle_sessions,
                    idle_timeout=args.idle_timeout,
                    interval=args.fast_sweep_interval,
                )
            )
        results["leaked_browser_processes"] += stack.leaked
    results["loadavg_end"] = loadavg()

    report_write(results, args.output, markdown(results))
    return 1 if results["leaked_browser_processes"] else 0


if __name__ == "__main__":
    sys.exit(main())
