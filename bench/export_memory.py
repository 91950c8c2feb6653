"""What a job export costs the web process in memory, and whether the API answers meanwhile.

    bin/dev bench export_memory [--items 5000] [--bytes 8000] [--repeat 3]

Against the whole stack (gunicorn with the uvicorn workers, as deployed): an enterprise account
submits a job of `--items` URLs (address literals, never fetched: the job is cancelled at once),
whose items are then marked succeeded with `--bytes` of text each straight in the database (an
export of about items x bytes). The client downloads `GET /v1/jobs/{id}/results?format=jsonl`
reading 64 KB at a time, while a second client asks `GET /v1/jobs?limit=1` every 50 ms. Measured,
per download: the web workers' peak resident memory above their resident memory before it
(`/proc/PID/status` VmRSS sampled every 20 ms, the largest of the workers), the time to the
first byte and to the last, and the other client's slowest answer during the download.

Prints a Markdown table and writes JSON to bench/results/export_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from harness import REPO, log, running_stack


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
            found.append(int(child))
            todo.append(int(child))
    return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _download(
    base_url: str, key: str, job_id: str, workers: list[int], session: requests.Session
) -> dict[str, Any]:
    baseline = {pid: _rss_kb(pid) for pid in workers}
    peak = dict(baseline)
    done = threading.Event()
    slowest = [0.0]

    def sample() -> None:
        while not done.is_set():
            for pid in workers:
                peak[pid] = max(peak[pid], _rss_kb(pid))
            time.sleep(0.02)

    def other() -> None:
        with requests.Session() as other_session:
            while not done.is_set():
                started = time.perf_counter()
                answer = other_session.get(
                    f"{base_url}/v1/jobs",
                    params={"limit": 1},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=120,
                )
                answer.raise_for_status()
                slowest[0] = max(slowest[0], time.perf_counter() - started)
                time.sleep(0.05)

    threads = [threading.Thread(target=sample), threading.Thread(target=other)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    first_byte = None
    size = 0
    try:
        with session.get(
            f"{base_url}/v1/jobs/{job_id}/results",
            params={"format": "jsonl"},
            headers={"Authorization": f"Bearer {key}"},
            stream=True,
            timeout=300,
        ) as response:
            response.raise_for_status()
            for chunk in response.iter_content(64 * 1024):
                if first_byte is None:
                    first_byte = time.perf_counter() - started
                size += len(chunk)
    finally:
        total = time.perf_counter() - started
        done.set()
        for thread in threads:
            thread.join()
    growth = max(peak[pid] - baseline[pid] for pid in workers)
    return {
        "bytes": size,
        "first_byte_ms": round((first_byte or 0) * 1000, 1),
        "total_ms": round(total * 1000, 1),
        "rss_growth_mb": round(growth / 1024, 1),
        "other_request_max_ms": round(slowest[0] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--bytes", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-db", type=int, default=12)
    args = parser.parse_args()
    results: dict[str, Any] = {"items": args.items, "item_bytes": args.bytes, "load_before": os.getloadavg()}
    with running_stack(name="export_memory", redis_db=args.redis_db) as stack:
        key = stack.make_account(plan="enterprise", credits=10**9)
        auth = {"Authorization": f"Bearer {key}"}
        session = requests.Session()
        urls = [f"http://127.0.0.1:9/{n}" for n in range(args.items)]
        job = session.post(f"{stack.base_url}/v1/jobs", json={"urls": urls}, headers=auth, timeout=300)
        job.raise_for_status()
        job_id = job.json()["id"]
        session.post(f"{stack.base_url}/v1/jobs/{job_id}/cancel", headers=auth, timeout=60).raise_for_status()
        stack.db_query(
            "UPDATE jobs_jobitem SET status = 'succeeded', "
            "data = jsonb_build_object('text', repeat('x', %s)) WHERE job_id = %s",
            (args.bytes, job_id),
        )
        workers = _descendants(stack.processes["web"].pid)
        workers = [pid for pid in workers if "gunicorn" in Path(f"/proc/{pid}/cmdline").read_text()]
        log(f"web processes {workers}; export of {args.items} items x {args.bytes} bytes")
        runs = []
        for n in range(args.repeat):
            run = _download(stack.base_url, key, job_id, workers, session)
            log(f"run {n + 1}: {run}")
            runs.append(run)
        results["runs"] = runs
    results["load_after"] = os.getloadavg()
    commit = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(
        f"\nJob export, {datetime.now(UTC).isoformat(timespec='seconds')}, commit {commit}, "
        f"{os.cpu_count()} CPUs, {platform.python_version()}\n"
    )
    print(f"{args.items} items x {args.bytes} bytes, {args.repeat} downloads\n")
    print("| | median | max |\n|---|---|---|")
    for field, label in (
        ("bytes", "body bytes"),
        ("rss_growth_mb", "web worker peak RSS growth, MB"),
        ("first_byte_ms", "time to first byte, ms"),
        ("total_ms", "time to last byte, ms"),
        ("other_request_max_ms", "slowest GET /v1/jobs meanwhile, ms"),
    ):
        values = [run[field] for run in runs]
        print(f"| {label} | {statistics.median(values)} | {max(values)} |")
    out = REPO / "bench" / "results" / "export_memory.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
