"""Action round trip: a cheap action through the API against the same command sent straight to WebDriver.

    bin/dev bench action_roundtrip [--iterations 300] [--warmup 20] [--grid] ...

One enterprise account, one session (POST /v1/computers), navigated to a tiny page that this
script serves on 127.0.0.1. Then, in one loop, each iteration takes one sample of each of:

- api_html:        POST /v1/computers/{id}/html through the API (requests.Session, keep-alive);
- direct_source:   `driver.page_source` (WebDriver GET /source) on the same WebDriver session,
                   attached with workers.browser.driver.attach from the row's webdriver_url and
                   webdriver_session_id: the WebDriver call `html` makes;
- api_wait0:       POST /v1/computers/{id}/execute {"action": {"type": "wait", "ms": 0}}: the
                   cheapest action, no WebDriver call at all, so its round trip is the
                   pipeline alone;
- direct_window:   `driver.current_window_handle` (WebDriver GET /window): what an action paid
                   before workers recorded the main tab, for reference.

The order of the four rotates from one iteration to the next, so drift in the machine's load
affects them all alike. Overhead = median(api_html) - median(direct_source).

For every API sample the Action row's created_at / started_at / finished_at (written by the web
and the worker on this machine's clock) split the round trip into phases:
client send -> created_at (web: auth, throttle, session lookup and touch, the insert),
created_at -> started_at (charge, commit, enqueue, broker, worker pick-up, lock, queue read),
started_at -> finished_at (worker: session read, WebDriver calls, the finish update),
finished_at -> client receive (refund check, completion signal, the web's wake-up, response).

With --grid the whole run is repeated on a fresh stack with BROWSER_BACKEND=grid on a local
Selenium Grid 4 (tests/support/selenium_grid.py); the direct samples then go through the hub.

Prints a Markdown table and writes JSON to bench/results/action_roundtrip.json.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from harness import (
    REPO,
    Stack,
    free_port,
    loadavg,
    log,
    percentile,
    report_header,
    report_write,
    running_stack,
)

sys.path.insert(0, str(REPO))  # workers.browser.driver, tests.support.selenium_grid

HTTP_TIMEOUT = 60
TARGET_OVERHEAD_MS = 10.0
PAGE = (
    b"<!doctype html><html><head><meta charset='utf-8'><title>bench</title></head>"
    b"<body><h1>Browserfleet</h1><p>A tiny page for the action round trip benchmark.</p></body></html>"
)
MEASUREMENTS = ("api_html", "direct_source", "api_wait0", "direct_window")
PHASES = ("web_accept", "queue_to_worker", "worker_run", "finish_to_response")


# --- the page ---------------------------------------------------------------------------------
class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving_page() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/page.html"
    finally:
        server.shutdown()
        server.server_close()


# --- statistics -------------------------------------------------------------------------------
def stats_ms(values: list[float]) -> dict[str, float | int | None]:
    """Summary in milliseconds of samples in seconds (percentiles nearest-rank)."""
    if not values:
        return {k: None for k in ("n", "median", "p90", "p99", "mean", "min", "max")}
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "median": round(statistics.median(ms), 3),
        "p90": round(percentile(ms, 90), 3),
        "p99": round(percentile(ms, 99), 3),
        "mean": round(statistics.fmean(ms), 3),
        "min": round(min(ms), 3),
        "max": round(max(ms), 3),
    }


# --- one run ----------------------------------------------------------------------------------
class Api:
    def __init__(self, stack: Stack, key: str) -> None:
        self.base = f"{stack.base_url}/v1/computers"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.http.post(f"{self.base}{path}", json=body, timeout=HTTP_TIMEOUT)


def _timed_api(api: Api, path: str, body: dict[str, Any], samples: list[dict[str, Any]]) -> None:
    sent_wall = time.time()
    started = time.perf_counter()
    reply = api.post(path, body)
    elapsed = time.perf_counter() - started
    received_wall = time.time()
    payload = reply.json() if reply.headers.get("Content-Type", "").startswith("application/json") else {}
    if reply.status_code != 200 or payload.get("status") != "success":
        raise RuntimeError(f"POST {path}: {reply.status_code} {reply.text[:300]}")
    samples.append(
        {
            "seconds": elapsed,
            "sent": sent_wall,
            "received": received_wall,
            "action_id": payload.get("action_id"),
            "bytes": len(reply.content),
        }
    )


def _timed_direct(call: Callable[[], Any], samples: list[dict[str, Any]]) -> None:
    started = time.perf_counter()
    value = call()
    elapsed = time.perf_counter() - started
    if not value:
        raise RuntimeError("the direct WebDriver call returned nothing")
    samples.append({"seconds": elapsed})


def _phases(stack: Stack, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Split API round trips by the Action rows' timestamps (same clock as the client)."""
    ids = [s["action_id"] for s in samples]
    rows = {
        public_id: (created, started, finished)
        for public_id, created, started, finished in stack.db_query(
            "SELECT public_id, created_at, started_at, finished_at FROM browser_sessions_action"
            " WHERE public_id = ANY(%s)",
            [ids],
        )
    }
    phases: dict[str, list[float]] = {p: [] for p in PHASES}
    for sample in samples:
        created, started, finished = rows[sample["action_id"]]
        if started is None or finished is None:
            continue
        created_s, started_s, finished_s = (t.timestamp() for t in (created, started, finished))
        phases["web_accept"].append(created_s - sample["sent"])
        phases["queue_to_worker"].append(started_s - created_s)
        phases["worker_run"].append(finished_s - started_s)
        phases["finish_to_response"].append(sample["received"] - finished_s)
    return {phase: stats_ms(values) for phase, values in phases.items()}


def run_once(
    *, label: str, env_overrides: dict[str, str], page_url: str, iterations: int, warmup: int
) -> dict[str, Any]:
    from sessions.location import BrowserLocation
    from workers.browser.driver import attach, forget

    with running_stack(name="action_roundtrip", env_overrides=env_overrides) as stack:
        api = Api(stack, stack.make_account(plan="enterprise"))
        for _ in range(4):  # as the SDK does: a 503 (a start timed out on a busy machine) is retried
            created = api.http.post(api.base, json={}, timeout=HTTP_TIMEOUT)
            if created.status_code != 503:
                break
            time.sleep(float(created.headers.get("Retry-After", "1")))
        if created.status_code != 201:
            raise RuntimeError(f"create: {created.status_code} {created.text[:300]}")
        session_id = created.json()["id"]
        navigated = api.post(f"/{session_id}/navigate", {"url": page_url})
        if navigated.status_code != 200 or navigated.json().get("status") != "success":
            raise RuntimeError(f"navigate: {navigated.status_code} {navigated.text[:300]}")
        backend, webdriver_url, webdriver_session_id = stack.db_query(
            "SELECT backend, webdriver_url, webdriver_session_id FROM browser_sessions_browsersession"
            " WHERE id = %s",
            [session_id],
        )[0]
        handle = BrowserLocation(
            backend=backend, webdriver_url=webdriver_url, webdriver_session_id=webdriver_session_id
        )
        driver = attach(handle)
        direct_html = driver.page_source
        log(f"{label}: session {session_id} on {backend} {webdriver_url}; page {len(direct_html)} chars")

        samples: dict[str, list[dict[str, Any]]] = {m: [] for m in MEASUREMENTS}
        steps: dict[str, Callable[[list[dict[str, Any]]], None]] = {
            "api_html": lambda out: _timed_api(api, f"/{session_id}/html", {}, out),
            "direct_source": lambda out: _timed_direct(lambda: driver.page_source, out),
            "api_wait0": lambda out: _timed_api(
                api, f"/{session_id}/execute", {"action": {"type": "wait", "ms": 0}}, out
            ),
            "direct_window": lambda out: _timed_direct(lambda: driver.current_window_handle, out),
        }
        scratch: dict[str, list[dict[str, Any]]] = {m: [] for m in MEASUREMENTS}
        for _ in range(warmup):
            for name in MEASUREMENTS:
                steps[name](scratch[name])
        load_before = loadavg()
        started = time.monotonic()
        for i in range(iterations):
            # Rotate the order: each measurement takes each position equally often.
            for k in range(len(MEASUREMENTS)):
                name = MEASUREMENTS[(i + k) % len(MEASUREMENTS)]
                steps[name](samples[name])
            if (i + 1) % 100 == 0:
                log(f"{label}: {i + 1}/{iterations} iterations")
        duration = time.monotonic() - started
        load_after = loadavg()
        api_html_chars = len(api.post(f"/{session_id}/html", {}).json()["result"]["html_content"])
        forget(handle)
        ended = api.http.delete(f"{api.base}/{session_id}", timeout=HTTP_TIMEOUT)
        if ended.status_code != 200:
            log(f"{label}: DELETE {session_id}: {ended.status_code} {ended.text[:200]}")

        summaries = {name: stats_ms([s["seconds"] for s in samples[name]]) for name in MEASUREMENTS}
        result = {
            "label": label,
            "backend": backend,
            "webdriver_url": webdriver_url,
            "iterations": iterations,
            "warmup": warmup,
            "duration_seconds": round(duration, 1),
            "page_chars": {"direct": len(direct_html), "api": api_html_chars},
            "response_bytes_api_html_median": statistics.median(s["bytes"] for s in samples["api_html"]),
            "summary_ms": summaries,
            "overhead_ms": {
                stat: round(summaries["api_html"][stat] - summaries["direct_source"][stat], 3)  # type: ignore[operator]
                for stat in ("median", "p90", "p99", "mean")
            },
            "phases_ms": {
                "api_html": _phases(stack, samples["api_html"]),
                "api_wait0": _phases(stack, samples["api_wait0"]),
            },
            "samples_ms": {
                name: [round(s["seconds"] * 1000, 3) for s in samples[name]] for name in MEASUREMENTS
            },
            # Per API sample: the action id and the client's wall-clock send and receive times,
            # to join with the rows (or with traces taken in a scratch copy).
            "api_samples": {
                name: [[s["action_id"], round(s["sent"], 6), round(s["received"], 6)] for s in samples[name]]
                for name in ("api_html", "api_wait0")
            },
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        }
    result["leaked_browser_processes"] = stack.leaked
    return result


@contextlib.contextmanager
def local_grid() -> Iterator[str]:
    from tests.support.selenium_grid import default_cache_dir, ensure_grid_jar, running_grid

    jar = ensure_grid_jar(default_cache_dir())
    with (
        tempfile.TemporaryDirectory(prefix="bf-bench-grid-") as workdir,
        running_grid(jar=jar, port=free_port(), workdir=Path(workdir)) as url,
    ):
        yield url


# --- report -----------------------------------------------------------------------------------
LABELS = {
    "api_html": "`POST /v1/computers/{id}/html` through the API",
    "direct_source": "`driver.page_source` straight to WebDriver (GET /source)",
    "api_wait0": '`POST .../execute {"type":"wait","ms":0}` through the API',
    "direct_window": "`driver.current_window_handle` straight to WebDriver (GET /window)",
}
PHASE_LABELS = {
    "web_accept": "client send -> Action.created_at (web accepts)",
    "queue_to_worker": "created_at -> started_at (charge, commit, queue, worker claims)",
    "worker_run": "started_at -> finished_at (worker runs it)",
    "finish_to_response": "finished_at -> client receives the response",
}


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Action round trip, {results['date']}, commit {results['machine']['git_commit']}, "
        f"{results['machine']['nproc']} CPUs, {results['machine']['chromium']}",
    ]
    for run in results["runs"]:
        lines += [
            "",
            f"**{run['label']}** ({run['backend']} backend, {run['iterations']} iterations after "
            f"{run['warmup']} warm-up, load {run['loadavg_before']} -> {run['loadavg_after']})",
            "",
            "| ms | n | median | p90 | p99 | mean | min | max |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in MEASUREMENTS:
            s = run["summary_ms"][name]
            cells = [
                LABELS[name],
                str(s["n"]),
                *(_ms(s[k]) for k in ("median", "p90", "p99", "mean", "min", "max")),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        overhead = run["overhead_ms"]
        verdict = "met" if overhead["median"] <= TARGET_OVERHEAD_MS else "NOT met"
        lines += [
            "",
            f"Overhead of html through the API: median {overhead['median']:.2f} ms "
            f"(p90 {overhead['p90']:.2f}, p99 {overhead['p99']:.2f}, mean {overhead['mean']:.2f}); "
            f"target <= {TARGET_OVERHEAD_MS:.0f} ms at the median: {verdict}.",
            "",
            "| phase (median ms) | html | wait 0 |",
            "|---|---|---|",
        ]
        for phase in PHASES:
            html = run["phases_ms"]["api_html"][phase]["median"]
            wait = run["phases_ms"]["api_wait0"][phase]["median"]
            lines.append(f"| {PHASE_LABELS[phase]} | {_ms(html)} | {_ms(wait)} |")
        if run["leaked_browser_processes"]:
            lines.append(f"- browser processes killed at teardown: {run['leaked_browser_processes']}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=300, help="counted iterations (300)")
    parser.add_argument("--warmup", type=int, default=20, help="uncounted iterations first (20)")
    parser.add_argument("--grid", action="store_true", help="also run on a local Selenium Grid")
    parser.add_argument("--grid-only", action="store_true", help="run on a local Selenium Grid only")
    parser.add_argument(
        "--output", type=Path, default=REPO / "bench" / "results" / "action_roundtrip.json", help="JSON file"
    )
    args = parser.parse_args()
    if args.iterations < 10 or args.warmup < 0:
        parser.error("--iterations must be at least 10, --warmup not negative")

    results: dict[str, Any] = {
        **report_header("action_roundtrip"),
        "config": {
            "web": "gunicorn + uvicorn (ASGI) 2 workers x 16 API threads",
            "worker": "celery worker -Q lifecycle,actions,batch -c 4",
            "client": "requests.Session (keep-alive), sequential",
            "target_overhead_ms": TARGET_OVERHEAD_MS,
            **{k: v for k, v in vars(args).items() if k != "output"},
        },
        "runs": [],
    }
    log(f"load average {results['loadavg_start']} on {results['machine']['nproc']} CPUs")
    with serving_page() as page_url:
        if not args.grid_only:
            results["runs"].append(
                run_once(
                    label="local backend",
                    env_overrides={},
                    page_url=page_url,
                    iterations=args.iterations,
                    warmup=args.warmup,
                )
            )
        if args.grid or args.grid_only:
            with local_grid() as grid_url:
                log(f"Selenium Grid at {grid_url}")
                results["runs"].append(
                    run_once(
                        label="grid backend",
                        env_overrides={"BROWSER_BACKEND": "grid", "SELENIUM_GRID_URL": grid_url},
                        page_url=page_url,
                        iterations=args.iterations,
                        warmup=args.warmup,
                    )
                )
    results["loadavg_end"] = loadavg()

    report_write(results, args.output, markdown(results))
    return 1 if any(run["leaked_browser_processes"] for run in results["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
