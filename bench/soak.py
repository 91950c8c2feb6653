"""Soak: create -> act -> terminate cycles, with some browsers killed in the middle of an action.

    bin/dev bench soak [--cycles 300] [--kill-percent 10] [--parallel 4]

Each cycle creates a session, navigates to a local page, runs a few cheap actions and a
2-second `wait`, and deletes it. In `--kill-percent` of the cycles, the session's Chromium is
killed (SIGKILL of its process group) while that `wait` runs: the action must end as an error,
the session as `crashed`, and nothing may be left behind.

Reported (printed as Markdown, written to bench/results/soak.json): cycles and their outcomes,
leaked browser processes at the end (must be 0), stuck sessions (live or unreleased after the
run) and stuck actions (queued or running after the run), web and worker RSS at the start and
the end (sum over each process tree), and the balance-versus-ledger check.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from harness import REPO, Stack, log, processes_mentioning, running_stack

PAGES = REPO / "tests" / "pages"
RESULTS = REPO / "bench" / "results" / "soak.json"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_pages() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(PAGES)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def _tree_rss_kib(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, in KiB."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def _memory(stack: Stack) -> dict[str, int]:
    return {name: _tree_rss_kib(pid) // 1024 for name, pid in stack_pids(stack).items()}


def stack_pids(stack: Stack) -> dict[str, int]:
    return {name: process.pid for name, process in stack.processes.items()}


def _kill_browser(stack: Stack, session_id: str) -> bool:
    found = processes_mentioning(f"{stack.profile_root}/{session_id}/")
    for pid, _ in found:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    return bool(found)


def _cycle(stack: Stack, http: requests.Session, pages: str, kill: bool) -> str:
    created = http.post(f"{stack.base_url}/v1/computers", json={}, timeout=90)
    if created.status_code != 201:
        return f"create {created.status_code}"
    session_id = created.json()["id"]
    base = f"{stack.base_url}/v1/computers/{session_id}"
    try:
        nav = http.post(f"{base}/navigate", json={"url": pages + "/flow.html"}, timeout=90).json()
        if nav.get("status") != "success":
            return "navigate error"
        for _ in range(3):
            http.post(f"{base}/html", json={}, timeout=90)
        if kill:
            waiting = http.post(
                f"{base}/execute?wait=false", json={"action": {"type": "wait", "ms": 2000}}, timeout=90
            )
            time.sleep(0.5)
            _kill_browser(stack, session_id)
            poll = f"{stack.base_url}/v1/actions/{waiting.json()['action_id']}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if http.get(poll, timeout=30).json().get("status") not in ("queued", "running"):
                    break
                time.sleep(0.5)
            status = http.get(base, timeout=30).json().get("status")
            return f"killed, session {status}"
        http.post(f"{base}/execute", json={"action": {"type": "wait", "ms": 2000}}, timeout=90)
        return "ok"
    finally:
        http.delete(base, timeout=90)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--kill-percent", type=float, default=10)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kills = [rng.random() * 100 < args.kill_percent for _ in range(args.cycles)]
    pages = _serve_pages()
    overrides = {"ACTION_LEASE_SECONDS": "10", "RECONCILE_INTERVAL_SECONDS": "5"}
    with running_stack(name="soak", env_overrides=overrides, supervised=True) as stack:
        key = stack.make_account(plan="enterprise")
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {key}"
        memory_start = _memory(stack)
        started = time.monotonic()
        outcomes: dict[str, int] = {}
        with ThreadPoolExecutor(args.parallel) as pool:
            for i, outcome in enumerate(pool.map(lambda kill: _cycle(stack, http, pages, kill), kills), 1):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if i % 25 == 0:
                    log(f"{i}/{args.cycles} cycles: {outcomes}")
        elapsed = time.monotonic() - started
        time.sleep(5)  # let the last stops finish
        memory_end = _memory(stack)
        stuck_sessions = stack.db_query(
            "SELECT count(*) FROM browser_sessions_browsersession"
            " WHERE status <> 'terminated' OR browser_released_at IS NULL"
        )[0][0]
        stuck_actions = stack.db_query(
            "SELECT count(*) FROM browser_sessions_action WHERE status IN ('queued', 'running')"
        )[0][0]
        mismatched = stack.db_query(
            "SELECT count(*) FROM (SELECT b.account_id FROM billing_balance b"
            " LEFT JOIN billing_ledgerentry l ON l.account_id = b.account_id"
            " GROUP BY b.account_id, b.credits HAVING b.credits <> coalesce(sum(l.amount), 0)) m"
        )[0][0]
        live_browsers = len(processes_mentioning(f"{stack.profile_root}/"))
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {os.cpu_count()} CPUs",
        "args": vars(args),
        "elapsed_seconds": round(elapsed, 1),
        "outcomes": outcomes,
        "browser_processes_after_run": live_browsers,
        "leaked_processes_at_teardown": len(stack.leaked),
        "stuck_sessions": stuck_sessions,
        "stuck_actions": stuck_actions,
        "balances_not_matching_ledger": mismatched,
        "rss_mib_start": memory_start,
        "rss_mib_end": memory_end,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("| figure | value |\n|---|---|")
    for key, value in result.items():
        print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
