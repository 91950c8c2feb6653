"""Saved browser state benchmark: save and restore time against state size.

    bin/dev bench saved_state [--sizes 10240,1048576,10485760] [--reps 5]

On a whole stack with a warm pool (BROWSER_POOL_SIZE 2), for each size: a persistent session
opens a page served here on 127.0.0.1 that stores that many bytes in IndexedDB (plus a cookie and
a little localStorage), then
a) save: `POST /v1/computers/{id}/state` round trips (`--reps`), the export, sealing and storing;
b) restore: creates with `environment_id` and plain creates, interleaved (`--reps` each), every
   one on a warm pool browser (the bench waits until one is ready before each create), each
   followed at once by a navigation to a small page of the restored origin, then DELETE. The
   difference of the create medians is what a restore adds to a warm create (goal: <= 150 ms
   for 1 MB); that of create + first navigation is what it adds before the first page is there
   (the origins' storage goes in after the session is ready, before its first action).

With --settle each create waits until the pool is full and no browser starts or stops (then 1 s):
the restore on an otherwise idle host. Without it a create may run beside the refill that the
previous create's claim started (a Chromium start), as under a steady stream of creates.

Prints a Markdown table and writes JSON to bench/results/saved_state.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from harness import Stack, loadavg, log, machine_info, running_stack

HTTP_TIMEOUT = 60

FILL_PAGE = """<!doctype html><title>fill</title><body><div id=out>pending</div><script>
document.cookie = 'sid=bench; path=/';
localStorage.setItem('profile', 'bench');
const total = %(bytes)d, chunk = 65536;
const open = indexedDB.open('bench', 1);
open.onupgradeneeded = () => open.result.createObjectStore('blobs');
open.onsuccess = () => {
  const tx = open.result.transaction('blobs', 'readwrite');
  const store = tx.objectStore('blobs');
  for (let at = 0, i = 0; at < total; at += chunk, i++) {
    store.put('x'.repeat(Math.min(chunk, total - at)), i);
  }
  tx.oncomplete = () => { document.getElementById('out').textContent = 'filled'; };
};
</script></body>"""


# The first page a created session opens (on the restored origin): what a create then its first
# navigation cost together.
HELLO_PAGE = "<!doctype html><title>hello</title><body>hello</body>"


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        size = int(self.path.rsplit("=", 1)[-1]) if "bytes=" in self.path else 0
        page = FILL_PAGE % {"bytes": size} if self.path.startswith("/fill") else HELLO_PAGE
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _median_ms(values: list[float]) -> float | None:
    return round(statistics.median(values) * 1000, 1) if values else None


def _p95_ms(values: list[float]) -> float | None:
    """Nearest-rank 95th percentile (of few samples: their maximum)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, -(-95 * len(ordered) // 100) - 1)] * 1000, 1)


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _pool_ready(stack: Stack) -> bool:
    return bool(stack.db_query("SELECT 1 FROM browser_sessions_warmbrowser WHERE state = 'ready' LIMIT 1"))


POOL_SIZE = 2
# --settle: before each create, the whole pool is up and nothing else starts or stops a browser.
SETTLE = {"on": False, "pause": 1.0}


def _pool_settled(stack: Stack) -> bool:
    """Every pool browser ready, none starting, and no session's browser still up or stopping:
    the machine does nothing but what is measured (a refill's Chromium start is ~1.8 core-seconds
    on these 2 cores, the scale of a restore)."""
    ready, busy = stack.db_query(
        "SELECT count(*) FILTER (WHERE state = 'ready'), count(*) FILTER (WHERE state <> 'ready')"
        " FROM browser_sessions_warmbrowser"
    )[0]
    live = stack.db_query(
        "SELECT count(*) FROM browser_sessions_browsersession WHERE browser_released_at IS NULL"
    )[0][0]
    return ready >= POOL_SIZE and busy == 0 and live == 0


def _create(http: requests.Session, stack: Stack, body: dict[str, Any]) -> tuple[float, str, bool]:
    if SETTLE["on"]:
        _wait(lambda: _pool_settled(stack), 120, "the pool full and no browser starting or stopping")
        time.sleep(SETTLE["pause"])
    _wait(lambda: _pool_ready(stack), 120, "a warm pool browser")
    started = time.perf_counter()
    reply = http.post(f"{stack.base_url}/v1/computers", json=body, timeout=HTTP_TIMEOUT)
    elapsed = time.perf_counter() - started
    reply.raise_for_status()
    session_id = reply.json()["id"]
    warm = bool(
        stack.db_query(
            "SELECT 1 FROM browser_sessions_browsersession WHERE id = %s AND profile_dir LIKE %s",
            (session_id, "%/pool_%"),
        )
    )
    return elapsed, session_id, warm


_RESTORED = re.compile(r"saved state restored in (\d+) ms \(read (\d+) ms, import (\d+) ms([^)]*)\)")
_restores_seen = 0
_STORAGE = re.compile(r"saved state storage restored in (\d+) ms after ready \(([^)]*)\)")
_storages_seen = 0


def _worker_storage_ms(stack: Stack) -> list[tuple[str, ...]]:
    """Storage restores after ready (and their phases) the worker logged since the last call."""
    global _storages_seen
    found = _STORAGE.findall((stack.workdir / "worker.log").read_text(errors="replace"))
    new, _storages_seen = found[_storages_seen:], len(found)
    return new


def _worker_restore_ms(stack: Stack) -> list[tuple[str, ...]]:
    """Restore times the worker logged since the last call."""
    global _restores_seen
    text = (stack.workdir / "worker.log").read_text(errors="replace")
    found = _RESTORED.findall(text)
    new, _restores_seen = found[_restores_seen:], len(found)
    return new


def bench_size(stack: Stack, http: requests.Session, pages: str, size: int, reps: int) -> dict[str, Any]:
    load_before = loadavg()
    elapsed, source, _ = _create(http, stack, {"persistent": True})
    navigate = http.post(
        f"{stack.base_url}/v1/computers/{source}/navigate",
        json={"url": f"{pages}/fill?bytes={size}"},
        timeout=HTTP_TIMEOUT,
    )
    navigate.raise_for_status()

    def filled() -> bool:
        html = http.post(f"{stack.base_url}/v1/computers/{source}/html", json={}, timeout=HTTP_TIMEOUT)
        return "filled" in str(html.json().get("result", {}).get("html_content", ""))

    _wait(filled, 120, "the page to store its data")
    saves: list[float] = []
    for _ in range(reps):
        started = time.perf_counter()
        reply = http.post(f"{stack.base_url}/v1/computers/{source}/state", timeout=HTTP_TIMEOUT)
        saves.append(time.perf_counter() - started)
        reply.raise_for_status()
        if reply.json()["status"] != "ready":
            raise RuntimeError(f"save failed: {reply.json()}")
    environment = reply.json()
    http.delete(f"{stack.base_url}/v1/computers/{source}", timeout=HTTP_TIMEOUT)
    restored: list[float] = []
    plain: list[float] = []
    restored_first: list[float] = []
    plain_first: list[float] = []
    cold = 0
    for _ in range(reps):
        for body, into, first in (
            ({"environment_id": source}, restored, restored_first),
            ({}, plain, plain_first),
        ):
            elapsed, session_id, warm = _create(http, stack, body)
            cold += not warm
            into.append(elapsed)
            # Then at once its first navigation, to the restored origin: the create's time plus
            # this one's is what a script waits before its first page is there.
            started = time.perf_counter()
            navigate = http.post(
                f"{stack.base_url}/v1/computers/{session_id}/navigate",
                json={"url": f"{pages}/hello"},
                timeout=HTTP_TIMEOUT,
            )
            first.append(elapsed + time.perf_counter() - started)
            if navigate.json().get("status") != "success":
                raise RuntimeError(f"first navigation failed: {navigate.text[:300]}")
            http.delete(f"{stack.base_url}/v1/computers/{session_id}", timeout=HTTP_TIMEOUT)
    restore_ms, plain_ms = _median_ms(restored), _median_ms(plain)
    first_r, first_p = _median_ms(restored_first), _median_ms(plain_first)
    worker = _worker_restore_ms(stack)
    storage = _worker_storage_ms(stack)
    return {
        "size_bytes": size,
        "state_size_bytes": environment["size_bytes"],
        "save_ms": {"median": _median_ms(saves), "all": [round(s * 1000, 1) for s in saves]},
        "create_with_environment_ms": {"median": restore_ms, "all": [round(s * 1000, 1) for s in restored]},
        "plain_warm_create_ms": {"median": plain_ms, "all": [round(s * 1000, 1) for s in plain]},
        "restore_overhead_ms": round(restore_ms - plain_ms, 1) if restore_ms and plain_ms else None,
        "create_with_environment_p95_ms": _p95_ms(restored),
        "plain_warm_create_p95_ms": _p95_ms(plain),
        # Create, then at once a navigation to the restored origin, both answered.
        "create_and_first_navigate_with_environment_ms": {
            "median": _median_ms(restored_first),
            "p95": _p95_ms(restored_first),
            "all": [round(s * 1000, 1) for s in restored_first],
        },
        "plain_create_and_first_navigate_ms": {
            "median": _median_ms(plain_first),
            "p95": _p95_ms(plain_first),
            "all": [round(s * 1000, 1) for s in plain_first],
        },
        "first_navigate_overhead_ms": round(first_r - first_p, 1) if first_r and first_p else None,
        # The worker's own figures (its log): the whole restore, reading and opening the state,
        # the import, and the import's phases.
        "worker_restore_ms": {
            "median": statistics.median(float(w[0]) for w in worker) if worker else None,
            "read_median": statistics.median(float(w[1]) for w in worker) if worker else None,
            "import_median": statistics.median(float(w[2]) for w in worker) if worker else None,
            "all": [f"{w[0]} ms (read {w[1]}, import {w[2]}{w[3]})" for w in worker],
        },
        # The origins' storage, restored after the session is ready (before its first action).
        "worker_storage_after_ready_ms": {
            "median": statistics.median(float(w[0]) for w in storage) if storage else None,
            "all": [f"{w[0]} ms ({w[1]})" for w in storage],
        },
        "cold_creates": cold,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10240,1048576,10485760")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--redis-db",
        type=int,
        default=int(os.environ.get("REDIS_URL", "/13").rsplit("/", 1)[-1] or 13),
        help="Redis database of the stack (default: that of REDIS_URL, else 13)",
    )
    parser.add_argument(
        "--settle",
        action="store_true",
        help="before each create wait until the pool is full and no browser starts or stops, then 1 s:"
        " what a restore costs on an otherwise idle host, without a refill's Chromium start beside it",
    )
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "saved_state.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pages = f"http://127.0.0.1:{server.server_address[1]}"
    results: dict[str, Any] = {"machine": machine_info(), "reps": args.reps, "settle": args.settle}
    results["sizes"] = []
    SETTLE["on"] = args.settle
    overrides = {"BROWSER_POOL_SIZE": str(POOL_SIZE), "SAVED_STATE_TIMEOUT_SECONDS": "60"}
    with running_stack(name="saved_state", env_overrides=overrides, redis_db=args.redis_db) as stack:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {stack.make_account(plan='enterprise')}"
        for size in sizes:
            log(f"size {size}")
            results["sizes"].append(bench_size(stack, http, pages, size, args.reps))
    results["leaked_browser_processes"] = stack.leaked
    server.shutdown()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(
        "| stored | state JSON | save p50 | create+restore p50 / p95 | plain warm create p50 / p95 "
        "| overhead p50 | + first navigate p50 / p95, restored vs plain | its overhead p50 "
        "| worker restore p50 (read, import) | cold | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in results["sizes"]:
        for line in row["worker_restore_ms"]["all"]:
            log(f"{row['size_bytes']} B: worker restore {line}")
        for line in row["worker_storage_after_ready_ms"]["all"]:
            log(f"{row['size_bytes']} B: storage after ready {line}")
        print(
            f"| {row['size_bytes']} | {row['state_size_bytes']} | {row['save_ms']['median']} ms "
            f"| {row['create_with_environment_ms']['median']} / {row['create_with_environment_p95_ms']} ms "
            f"| {row['plain_warm_create_ms']['median']} / {row['plain_warm_create_p95_ms']} ms "
            f"| {row['restore_overhead_ms']} ms "
            f"| {row['create_and_first_navigate_with_environment_ms']['median']} / "
            f"{row['create_and_first_navigate_with_environment_ms']['p95']} vs "
            f"{row['plain_create_and_first_navigate_ms']['median']} / "
            f"{row['plain_create_and_first_navigate_ms']['p95']} ms "
            f"| {row['first_navigate_overhead_ms']} ms "
            f"| {row['worker_restore_ms']['median']} ms "
            f"({row['worker_restore_ms']['read_median']}, {row['worker_restore_ms']['import_median']}) "
            f"| {row['cold_creates']} | {row['loadavg_before']} |"
        )
    return 1 if stack.leaked else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    sys.exit(main())
