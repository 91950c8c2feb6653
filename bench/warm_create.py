"""Where a warm-pool create's time goes (issue 20: the warm create got slower after wave 4).

    bin/dev bench warm_create [--creates 16] [--pool 2] [--output PATH]

One stack (bench/harness.py) with a full-Chromium warm pool of `--pool`; `--creates` sequential
`POST /v1/computers`, each once the pool is full again (plus 0.7 s for the refill's CPU to
settle), each followed by DELETE. For each create, from the client's clock and the session row
(one machine, one clock):

- `accept`: request sent -> `created_at` (the web process took it: HTTP, auth, throttle, the
  in-flight slot; `created_at` is taken at the start of the create's transaction);
- `claim_to_ready`: `created_at` -> `started_at` (the claim's transaction and commit, the task on
  the host's actions queue, the display and tab set-up, the ready mark);
- `answer`: `started_at` -> answer received (the ready mark's commit, the completion signal, the
  web's wake-up and its answer);

and the CPU time (sum of all threads' `schedstat`, ns resolution) each process group used from
the request until 50 ms after its answer: web, the actions and lifecycle workers, the stack's
PostgreSQL backends and redis-server (shared with whatever else runs). CPU time does not depend
much on the machine's load, latencies do: compare trees interleaved (copy this file into the
other tree's bench/). The first two creates are left out of the medians (connections, caches).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import requests
from harness import REPO, Stack, log, running_stack

# Only the harness's oldest helpers: this file also runs copied into an older tree (f2ef474).


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


SEGMENTS = ("total", "accept", "claim_to_ready", "answer")


def process_groups(stack: Stack) -> dict[str, list[int]]:
    """The stack's processes by role, found by the database name in their environment."""
    marker = f"POSTGRES_DB={stack.database}\0".encode()
    groups: dict[str, list[int]] = {"web": [], "actions": [], "lifecycle": []}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker not in Path(f"/proc/{pid}/environ").read_bytes():
                continue
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "chromium" in command or "chromedriver" in command:
            continue
        role = (
            "actions" if "actions-" in command
            else "lifecycle" if "lifecycle-" in command
            else "web" if "gunicorn" in command
            else None
        )  # fmt: skip
        if role:
            groups[role].append(int(pid))
    groups["postgres"] = [
        row[0]
        for row in stack.db_query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    ]
    groups["redis"] = [int(p) for p in os.popen("pidof redis-server").read().split()]  # noqa: S605
    return groups


def cpu_ms(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError):
            continue
    return total / 1e6


def ready_pool(stack: Stack, size: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    query = "SELECT count(*) FROM browser_sessions_warmbrowser WHERE state = 'ready'"
    while stack.db_query(query)[0][0] < size:
        if time.monotonic() > deadline:
            raise RuntimeError(f"pool did not reach {size} ready browsers")
        time.sleep(0.1)


def one_create(stack: Stack, http: requests.Session) -> dict[str, float]:
    groups = process_groups(stack)
    before = {role: cpu_ms(pids) for role, pids in groups.items()}
    sent = time.time()
    reply = http.post(f"{stack.base_url}/v1/computers", json={}, timeout=60)
    answered = time.time()
    time.sleep(0.05)
    after = {role: cpu_ms(pids) for role, pids in groups.items()}
    reply.raise_for_status()
    session_id = reply.json()["id"]
    created, started, profile = stack.db_query(
        "SELECT extract(epoch FROM created_at), extract(epoch FROM started_at), profile_dir"
        " FROM browser_sessions_browsersession WHERE id = %s",
        [session_id],
    )[0]
    http.delete(f"{stack.base_url}/v1/computers/{session_id}", timeout=60)
    if not Path(profile).name.startswith("pool_"):
        raise RuntimeError(f"create {session_id} did not claim a pool browser")
    created, started = float(created), float(started)
    return {
        "total": (answered - sent) * 1000,
        "accept": (created - sent) * 1000,
        "claim_to_ready": (started - created) * 1000,
        "answer": (answered - started) * 1000,
        **{f"cpu_{role}": after[role] - before[role] for role in groups},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--creates", type=int, default=16)
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "warm_create.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"benchmark": "warm_create", "loadavg_start": loadavg()}
    env = {
        "BROWSERS_PER_HOST": "200",
        "BROWSER_POOL_SIZE": str(args.pool),
        "BROWSER_POOL_SIZE_HEADLESS_SHELL": "0",
    }
    samples: list[dict[str, float]] = []
    with running_stack(name="warm_create", env_overrides=env) as stack:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {stack.make_account()}"
        for _ in range(args.creates):
            ready_pool(stack, args.pool)
            time.sleep(0.7)
            samples.append(one_create(stack, http))
            log("create " + ", ".join(f"{k} {v:.1f}" for k, v in samples[-1].items()))
    counted = samples[2:] or samples
    results["medians_ms"] = {key: round(statistics.median(s[key] for s in counted), 1) for key in samples[0]}
    results["samples_ms"] = [{k: round(v, 2) for k, v in s.items()} for s in samples]
    results["loadavg_end"] = loadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps({"medians_ms": results["medians_ms"], "loadavg": [results["loadavg_start"],
                      results["loadavg_end"]]}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
