"""Charged actions per second: 8 concurrent clients on one account, on 8 accounts, on one session.

    bin/dev bench charged_actions [--clients 8] [--duration 20] [--concurrency 4] [--concurrency 8] ...

Every client is a thread with its own keep-alive `requests.Session` that sends
`POST /v1/computers/{id}/execute {"action": {"type": "wait", "ms": 0}}` (the cheapest action,
charged 1 credit when accepted) back to back, waiting for each answer, for `--duration` seconds
after `--warmup` uncounted actions per client. The cases, each on its own new account(s):

- A: one enterprise account, `--clients` sessions (the plan has no concurrency limit), one
  client per session;
- B: `--clients` enterprise accounts, one session each, one client per session;
- C: one enterprise account, one session, `--clients` clients on it (actions of one session run
  one at a time, so this shows the per-session serialization).

A case's sessions are ended before the next case starts. Requests sent before the deadline are
counted; actions/s = successful charged actions / (last counted answer - start). A success is
HTTP 200 with `status: "success"`. Afterwards the database must show, per case, exactly one
`action` ledger line per successful answer (warm-up included), no refunds, every Action row
`succeeded`, and every balance equal to the sum of its ledger. From the rows it also reports
how many actions ran at once at most (never more than one per session).

The whole set runs once per `--concurrency` (the Celery worker's -c; default 4, as bin/dev),
each on a fresh stack. Prints Markdown and writes JSON to bench/results/charged_actions.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests
from harness import (
    REPO,
    Stack,
    loadavg,
    log,
    percentile,
    report_header,
    report_write,
    running_stack,
)

HTTP_TIMEOUT = 60
WAIT0 = {"action": {"type": "wait", "ms": 0}}


class Client(threading.Thread):
    """Sends wait-0 actions to one session until the deadline; records every answer."""

    def __init__(
        self, *, base_url: str, key: str, session_id: str, warmup: int, start: threading.Barrier
    ) -> None:
        super().__init__(daemon=True)
        self.url = f"{base_url}/v1/computers/{session_id}/execute"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"
        self.warmup = warmup
        self.start_barrier = start
        self.deadline = 0.0  # set by the driver before the barrier opens
        self.samples: list[tuple[float, float, int, bool]] = []  # (sent, seconds, http status, success)
        self.warmup_successes = 0
        self.warmup_failures: list[str] = []
        self.errors: list[str] = []

    def _one(self) -> tuple[float, float, int, bool, str]:
        sent = time.monotonic()
        try:
            reply = self.http.post(self.url, json=WAIT0, timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            return sent, time.monotonic() - sent, 0, False, str(exc)[:200]
        elapsed = time.monotonic() - sent
        ok = False
        detail = ""
        if reply.status_code == 200:
            ok = reply.json().get("status") == "success"
        if not ok:
            detail = f"{reply.status_code} {reply.text[:200]}"
        return sent, elapsed, reply.status_code, ok, detail

    def run(self) -> None:
        for _ in range(self.warmup):
            *_, ok, detail = self._one()
            if ok:
                self.warmup_successes += 1
            else:
                self.warmup_failures.append(detail)
        self.start_barrier.wait()  # the driver sets self.deadline before opening it
        while time.monotonic() < self.deadline:
            sent, elapsed, status, ok, detail = self._one()
            self.samples.append((sent, elapsed, status, ok))
            if detail and len(self.errors) < 20:
                self.errors.append(detail)


# --- CPU accounting -----------------------------------------------------------------------------
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
COMPONENTS = (
    "web",
    "worker",
    "beat",
    "postgres",
    "redis",
    "chromedriver",
    "chromium",
    "bench client",
    "other",
)


def _component(stack: Stack, pid: int, cmdline: str) -> str:
    """Which part of the stack a process is (postgres and redis are shared with the machine)."""
    port = stack.base_url.rsplit(":", 1)[1]
    if pid == os.getpid():
        return "bench client"
    if "gunicorn" in cmdline and f"127.0.0.1:{port}" in cmdline:
        return "web"
    if "celery" in cmdline and f"bench-{stack.name}@" in cmdline:
        return "worker"
    if "celery" in cmdline and str(stack.workdir) in cmdline:
        return "beat"
    if str(stack.profile_root) in cmdline:
        return "chromedriver" if "chromedriver" in cmdline.split(" ", 1)[0] else "chromium"
    if cmdline.startswith("postgres") or "/postgres " in cmdline or "bin/postgres" in cmdline:
        return "postgres"
    if cmdline.startswith("redis-server"):
        return "redis"
    return "other"


def cpu_snapshot(stack: Stack) -> dict[str, Any]:
    """CPU ticks used so far per process (with its component), and the machine's busy and total.

    A process's ticks include those of its children that ended and were reaped, so the
    short-lived PostgreSQL backends of closed connections count for postgres via the postmaster.
    """
    processes: dict[int, tuple[str, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            raw = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        fields = stat.rsplit(")", 1)[1].split()
        ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        processes[int(entry.name)] = (_component(stack, int(entry.name), cmdline), ticks)
    cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return {"processes": processes, "busy": sum(cpu) - cpu[3] - cpu[4], "total": sum(cpu)}


def cpu_report(before: dict[str, Any], after: dict[str, Any], actions: int) -> dict[str, Any]:
    """CPU seconds per component between two snapshots (processes that ended in between are
    left out; those that started count whole); what no process accounts for is `other`."""
    used = dict.fromkeys(COMPONENTS, 0.0)
    for pid, (component, ticks) in after["processes"].items():
        earlier = before["processes"].get(pid)
        used[component] += (
            ticks - earlier[1] if earlier and earlier[0] == component else ticks
        ) / CLOCK_TICKS
    busy = (after["busy"] - before["busy"]) / CLOCK_TICKS
    total = (after["total"] - before["total"]) / CLOCK_TICKS
    used["other"] += max(0.0, busy - sum(used.values()))
    return {
        "cpu_seconds": {k: round(v, 2) for k, v in used.items()},
        "cpu_ms_per_action": {k: round(1000 * v / actions, 2) if actions else None for k, v in used.items()},
        "machine_busy_fraction": round(busy / total, 3) if total else None,
    }


def _create_session(stack: Stack, key: str) -> str:
    # As the SDK does: a 503 (a browser start that timed out on a machine busy with other work)
    # is retried after its Retry-After, a few times.
    for _ in range(4):
        reply = requests.post(
            f"{stack.base_url}/v1/computers",
            json={},
            headers={"Authorization": f"Bearer {key}"},
            timeout=HTTP_TIMEOUT,
        )
        if reply.status_code != 503:
            break
        log(f"create: 503 {reply.json().get('code')}; retrying")
        time.sleep(float(reply.headers.get("Retry-After", "1")))
    if reply.status_code != 201:
        raise RuntimeError(f"create: {reply.status_code} {reply.text[:300]}")
    return str(reply.json()["id"])


def _end_session(stack: Stack, key: str, session_id: str) -> None:
    reply = requests.delete(
        f"{stack.base_url}/v1/computers/{session_id}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=HTTP_TIMEOUT,
    )
    if reply.status_code != 200:
        log(f"DELETE {session_id}: {reply.status_code} {reply.text[:200]}")


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(f, -1) for _, f in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def run_case(
    stack: Stack,
    *,
    case: str,
    accounts: int,
    sessions_per_account: int,
    clients_per_session: int,
    duration: float,
    warmup: int,
) -> dict[str, Any]:
    names = [f"bench-charged-{case}-{i}" for i in range(accounts)]
    keys = [stack.make_account(plan="enterprise", credits=10**9, name=name) for name in names]
    account_ids = [
        stack.db_query("SELECT id FROM accounts_account WHERE name = %s", [name])[0][0] for name in names
    ]
    sessions = [(key, _create_session(stack, key)) for key in keys for _ in range(sessions_per_account)]
    log(f"case {case}: {accounts} accounts, {len(sessions)} sessions; warming up")
    barrier = threading.Barrier(len(sessions) * clients_per_session + 1)
    clients = [
        Client(base_url=stack.base_url, key=key, session_id=sid, warmup=warmup, start=barrier)
        for key, sid in sessions
        for _ in range(clients_per_session)
    ]
    for client in clients:
        client.start()
    # Once every client has done its warm-up and waits at the barrier, set the deadline (they
    # read it only after the barrier) and open it.
    while barrier.n_waiting < len(clients):
        time.sleep(0.01)
    load_before = loadavg()
    cpu_before = cpu_snapshot(stack)
    started = time.monotonic()
    for client in clients:
        client.deadline = started + duration
    barrier.wait()
    for client in clients:
        client.join(timeout=duration + HTTP_TIMEOUT + 30)
    cpu_after = cpu_snapshot(stack)
    load_after = loadavg()
    samples = [s for c in clients for s in c.samples]
    ended = max((sent + elapsed for sent, elapsed, _, _ in samples), default=started)
    elapsed_total = ended - started
    ok_latencies = [elapsed for _, elapsed, _, ok in samples if ok]
    statuses: dict[str, int] = {}
    for _, _, status, ok in samples:
        label = "success" if ok else str(status)
        statuses[label] = statuses.get(label, 0) + 1
    warmup_ok = sum(c.warmup_successes for c in clients)
    per_client = [sum(1 for *_, ok in c.samples if ok) for c in clients]

    for key, sid in sessions:
        _end_session(stack, key, sid)

    # --- verification from the database ------------------------------------------------------
    ledger = dict(
        stack.db_query(
            "SELECT kind, count(*) FROM billing_ledgerentry WHERE account_id = ANY(%s) GROUP BY kind",
            [account_ids],
        )
    )
    action_statuses = dict(
        stack.db_query(
            "SELECT status, count(*) FROM browser_sessions_action WHERE account_id = ANY(%s) GROUP BY status",
            [account_ids],
        )
    )
    mismatched = stack.db_query(
        "SELECT b.account_id, b.credits, l.total FROM billing_balance b"
        " JOIN (SELECT account_id, SUM(amount) AS total FROM billing_ledgerentry GROUP BY account_id) l"
        " ON l.account_id = b.account_id WHERE b.account_id = ANY(%s) AND b.credits <> l.total",
        [account_ids],
    )
    charged_credits = -stack.db_query(
        "SELECT COALESCE(SUM(amount), 0) FROM billing_ledgerentry"
        " WHERE account_id = ANY(%s) AND kind = 'action'",
        [account_ids],
    )[0][0]
    rows = stack.db_query(
        "SELECT session_id, started_at, finished_at FROM browser_sessions_action"
        " WHERE account_id = ANY(%s) AND started_at IS NOT NULL AND finished_at IS NOT NULL",
        [account_ids],
    )
    intervals = [(s.timestamp(), f.timestamp()) for _, s, f in rows]
    by_session: dict[str, list[tuple[float, float]]] = {}
    for sid, s, f in rows:
        by_session.setdefault(sid, []).append((s.timestamp(), f.timestamp()))
    successes = len(ok_latencies)
    expected_ledger = successes + warmup_ok
    checks = {
        "ledger_action_entries": ledger.get("action", 0),
        "successful_answers_including_warmup": expected_ledger,
        "ledger_matches_answers": ledger.get("action", 0) == expected_ledger,
        "credits_charged_for_actions": int(charged_credits),
        "refund_entries": ledger.get("refund", 0),
        "action_rows_by_status": action_statuses,
        "balances_not_equal_to_ledger": [list(r) for r in mismatched],
        "max_actions_running_at_once": _max_overlap(intervals),
        "max_actions_running_at_once_in_one_session": max(
            (_max_overlap(v) for v in by_session.values()), default=0
        ),
    }
    ok = (
        checks["ledger_matches_answers"]
        and not mismatched
        and set(action_statuses) <= {"succeeded"}
        and checks["max_actions_running_at_once_in_one_session"] <= 1
    )
    result = {
        "case": case,
        "accounts": accounts,
        "sessions": len(sessions),
        "clients": len(clients),
        "duration_seconds": round(elapsed_total, 3),
        "requests": len(samples),
        "successes": successes,
        "actions_per_second": round(successes / elapsed_total, 2) if elapsed_total > 0 else None,
        "answers": statuses,
        "latency_ms": _latency(ok_latencies),
        "per_client_successes": per_client,
        "warmup_successes": warmup_ok,
        "warmup_failures": [f for c in clients for f in c.warmup_failures][:20],
        "errors": [e for c in clients for e in c.errors][:20],
        "checks": checks,
        "consistent": ok,
        "cpu": cpu_report(cpu_before, cpu_after, successes),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    log(
        f"case {case}: {successes} charged actions in {elapsed_total:.1f}s = "
        f"{result['actions_per_second']}/s, median {result['latency_ms']['median']} ms, consistent={ok}"
    )
    return result


def _latency(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median": None, "p90": None, "p99": None, "mean": None}
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "median": round(statistics.median(ms), 2),
        "p90": round(percentile(ms, 90), 2),
        "p99": round(percentile(ms, 99), 2),
        "mean": round(statistics.fmean(ms), 2),
    }


CASES = {
    "A": "1 account, {n} sessions, 1 client each",
    "B": "{n} accounts, 1 session each, 1 client each",
    "C": "1 account, 1 session, {n} clients on it",
}


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Charged actions per second, {results['date']}, commit {m['git_commit']}, {m['nproc']} CPUs",
        "",
        "| worker -c | case | clients | actions/s | median ms | p90 ms | p99 ms | answers"
        " | ledger = answers | balances = ledger | max running (all / per session) | load before -> after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        for c in run["cases"]:
            lat = c["latency_ms"]
            checks = c["checks"]
            answers = ", ".join(f"{k} {v}" for k, v in sorted(c["answers"].items()))
            lines.append(
                "| "
                + " | ".join(
                    [
                        str(run["worker_concurrency"]),
                        f"{c['case']}: {CASES[c['case']].format(n=c['clients'])}",
                        str(c["clients"]),
                        f"{c['actions_per_second']}",
                        f"{lat['median']}",
                        f"{lat['p90']}",
                        f"{lat['p99']}",
                        answers,
                        f"{checks['ledger_action_entries']} = "
                        f"{checks['successful_answers_including_warmup']}: "
                        + ("yes" if checks["ledger_matches_answers"] else "NO"),
                        "yes" if not checks["balances_not_equal_to_ledger"] else "NO",
                        f"{checks['max_actions_running_at_once']} / "
                        f"{checks['max_actions_running_at_once_in_one_session']}",
                        f"{c['loadavg_before'][0]} -> {c['loadavg_after'][0]}",
                    ]
                )
                + " |"
            )
    lines += [
        "",
        "CPU milliseconds per charged action, by process (postgres and redis: the whole server; "
        "other: the rest of the machine, kernel included)",
        "",
        "| worker -c | case | " + " | ".join(COMPONENTS) + " | machine busy |",
        "|---|---|" + "---|" * (len(COMPONENTS) + 1),
    ]
    for run in results["runs"]:
        for c in run["cases"]:
            per_action = c["cpu"]["cpu_ms_per_action"]
            cells = [str(run["worker_concurrency"]), c["case"], *(f"{per_action[k]}" for k in COMPONENTS)]
            cells.append(f"{100 * c['cpu']['machine_busy_fraction']:.0f}%")
            lines.append("| " + " | ".join(cells) + " |")
    problems = [
        f"worker -c {run['worker_concurrency']} case {c['case']}: inconsistent ({c['checks']})"
        for run in results["runs"]
        for c in run["cases"]
        if not c["consistent"]
    ]
    problems += [
        f"worker -c {run['worker_concurrency']}: browser processes killed at teardown {run['leaked']}"
        for run in results["runs"]
        if run["leaked"]
    ]
    if problems:
        lines += ["", *[f"- {p}" for p in problems]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients per case (8)")
    parser.add_argument("--duration", type=float, default=20, help="counted seconds per case (20)")
    parser.add_argument("--warmup", type=int, default=5, help="uncounted actions per client first (5)")
    parser.add_argument(
        "--concurrency", type=int, action="append", help="Celery worker -c; repeatable (default: 4)"
    )
    parser.add_argument("--cases", default="ABC", help="which cases to run (ABC)")
    parser.add_argument(
        "--output", type=Path, default=REPO / "bench" / "results" / "charged_actions.json", help="JSON file"
    )
    args = parser.parse_args()
    concurrencies = args.concurrency or [4]
    if args.clients < 1 or args.duration <= 0 or args.warmup < 0 or min(concurrencies) < 1:
        parser.error("--clients, --duration and --concurrency must be positive, --warmup not negative")
    if not set(args.cases) <= set(CASES):
        parser.error("--cases takes letters from ABC")

    results: dict[str, Any] = {
        **report_header("charged_actions"),
        "config": {
            "web": "gunicorn + uvicorn (ASGI) 2 workers x 16 API threads",
            "worker": "celery worker -Q lifecycle,actions,batch -c N (prefork)",
            "action": WAIT0,
            "plan": "enterprise (no session limit, 6000 requests/min per account)",
            **{k: v for k, v in vars(args).items() if k != "output"},
            "concurrency": concurrencies,
        },
        "runs": [],
    }
    log(f"load average {results['loadavg_start']} on {results['machine']['nproc']} CPUs")
    n = args.clients
    shapes = {"A": (1, n, 1), "B": (n, 1, 1), "C": (1, 1, n)}
    for concurrency in concurrencies:
        run: dict[str, Any] = {"worker_concurrency": concurrency, "cases": []}
        with running_stack(name="charged_actions", worker_concurrency=concurrency) as stack:
            for case in args.cases:
                accounts, sessions, clients = shapes[case]
                run["cases"].append(
                    run_case(
                        stack,
                        case=case,
                        accounts=accounts,
                        sessions_per_account=sessions,
                        clients_per_session=clients,
                        duration=args.duration,
                        warmup=args.warmup,
                    )
                )
            run["check_balances"] = stack.manage("check_balances").strip()
        run["leaked"] = stack.leaked
        results["runs"].append(run)
    results["loadavg_end"] = loadavg()

    report_write(results, args.output, markdown(results))
    consistent = all(c["consistent"] for r in results["runs"] for c in r["cases"])
    return 0 if consistent and not any(r["leaked"] for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
