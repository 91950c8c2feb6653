"""Batch scraping benchmark: a batch job against a plain sequential Selenium loop.

    bin/dev bench batch_scrape [--pages 500] [--latency-ms 300] [--concurrency 4 8] [--skip-zero]

The pages are served by this script on 127.0.0.1 (threaded), each answering after
`--latency-ms`, all with the same product markup, and every run extracts the same schema:

a) plain loop: one headless Chromium driven by Selenium in this process, `get` then the `scrape`
   action's own extraction script, page after page (the browser start is inside the time);
b) a job (POST /v1/jobs) with max_concurrency (and per_domain_concurrency) 4, then 8, timed
   from the submit to the moment GET /v1/jobs/{id} says completed (browser starts, queueing and
   billing are inside the time);
c) at 0 ms latency: the plain loop against a job with max_concurrency 1, per page (our overhead).

Prints a Markdown table and writes JSON to bench/results/batch_scrape.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from harness import REPO, log, running_stack

SCHEMA = {"fields": {"name": "h1", "price": ".price", "tags": {"selector": ".tag", "list": True}}}
HTTP_TIMEOUT = 60


class _Pages(BaseHTTPRequestHandler):
    latency = 0.0
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.latency:
            time.sleep(self.latency)
        n = self.path.rsplit("/", 1)[-1]
        body = (
            f"<!doctype html><html><head><title>Product {n}</title></head><body><h1>Product {n}</h1>"
            f"<span class='price'>${n}.00</span><ul><li class='tag'>a</li><li class='tag'>b</li></ul>"
            "</body></html>"
        ).encode()
        self.send_response(200 if n != "favicon.ico" else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve_pages() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def plain_loop(urls: list[str], workdir: str) -> dict[str, Any]:
    """The baseline: what a user writes with Selenium alone."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from workers.browser.options import CHROMIUM_ARGS
    from workers.browser.page_scripts import SCRAPE

    options = webdriver.ChromeOptions()
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    if os.geteuid() == 0:
        # Chromium refuses its sandbox as root; the service runs browsers as their own uid
        # (workers/browser/sandbox.py), this baseline simply goes without.
        options.add_argument("--no-sandbox")
    # Outside the stack's BROWSER_PROFILE_ROOT: reconcile would kill it as an orphan (with this
    # script, which shares its process group).
    options.add_argument(f"--user-data-dir={workdir}/plain-loop-profile")
    options.binary_location = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
    started = time.perf_counter()
    driver = webdriver.Chrome(
        service=Service(os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")), options=options
    )
    ready = time.perf_counter()
    ok = 0
    try:
        for url in urls:
            driver.get(url)
            result = driver.execute_script(
                SCRAPE,
                {"schema": SCHEMA, "format": "none", "selector": None, "maxChars": 200_000, "maxItems": 5000},
            )
            ok += bool(result.get("data", {}).get("name"))
    finally:
        driver.quit()
    ended = time.perf_counter()
    return {
        "pages": len(urls),
        "succeeded": ok,
        "seconds": round(ended - started, 3),
        "browser_start_seconds": round(ready - started, 3),
        "pages_per_second": round(len(urls) / (ended - started), 3),
        "seconds_per_page_after_start": round((ended - ready) / len(urls), 4),
    }


def run_job(stack: Any, key: str, urls: list[str], concurrency: int) -> dict[str, Any]:
    base_url = stack.base_url
    headers = {"Authorization": f"Bearer {key}"}
    body = {
        "urls": urls,
        "scrape": {"schema": SCHEMA},
        "max_concurrency": concurrency,
        "per_domain_concurrency": concurrency,
    }
    started = time.perf_counter()
    response = requests.post(f"{base_url}/v1/jobs", json=body, headers=headers, timeout=HTTP_TIMEOUT)
    if response.status_code != 201:
        raise RuntimeError(f"submit: {response.status_code} {response.text}")
    job = response.json()
    while job["status"] not in ("completed", "failed", "cancelled"):
        time.sleep(0.1)
        job = requests.get(f"{base_url}/v1/jobs/{job['id']}", headers=headers, timeout=HTTP_TIMEOUT).json()
    ended = time.perf_counter()
    if job["counts"]["succeeded"] != len(urls):
        log(f"job {job['id']}: {job['counts']}")
    # Steady state: from the first page done to the last (browser starts and dispatch excluded).
    ((first, last, done),) = stack.db_query(
        "SELECT min(finished_at), max(finished_at), count(*) FROM jobs_jobitem WHERE job_id = %s", [job["id"]]
    )
    steady = (last - first).total_seconds() / (done - 1) if done > 1 else None
    return {
        "job_id": job["id"],
        "max_concurrency": concurrency,
        "pages": len(urls),
        "succeeded": job["counts"]["succeeded"],
        "status": job["status"],
        "seconds": round(ended - started, 3),
        "pages_per_second": round(len(urls) / (ended - started), 3),
        "credits_used": job["credits_used"],
        "seconds_per_page_steady": round(steady, 4) if steady is not None else None,
    }


def commit() -> dict[str, Any]:
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "-uno"], cwd=REPO, capture_output=True, text=True
        ).stdout
    )
    return {"commit": os.environ.get("BENCH_SOURCE_COMMIT") or sha, "dirty": dirty}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 8])
    parser.add_argument(
        "--zero-pages", type=int, default=None, help="pages for the 0 ms runs (default --pages)"
    )
    parser.add_argument("--skip-zero", action="store_true")
    parser.add_argument("--redis-db", type=int, default=13)
    args = parser.parse_args()

    server, pages_url = serve_pages()
    results: dict[str, Any] = {"pages": args.pages, "latency_ms": args.latency_ms, "runs": {}}
    jobs_concurrency = max([*args.concurrency, 1])
    with running_stack(
        name="batch_scrape", redis_db=args.redis_db, jobs_worker_concurrency=jobs_concurrency
    ) as stack:
        key = stack.make_account(plan="enterprise")
        urls = [f"{pages_url}/p/{n}" for n in range(args.pages)]
        _Pages.latency = args.latency_ms / 1000
        log(f"plain loop, {args.pages} pages at {args.latency_ms} ms")
        results["runs"]["plain_loop"] = plain_loop(urls, str(stack.workdir))
        for concurrency in args.concurrency:
            log(f"job, max_concurrency {concurrency}")
            results["runs"][f"job_c{concurrency}"] = run_job(stack, key, urls, concurrency)
        if not args.skip_zero:
            zero = urls[: args.zero_pages or args.pages]
            _Pages.latency = 0.0
            log(f"0 ms latency: plain loop and a job with max_concurrency 1, {len(zero)} pages")
            results["runs"]["plain_loop_0ms"] = plain_loop(zero, str(stack.workdir))
            results["runs"]["job_c1_0ms"] = run_job(stack, key, zero, 1)
    server.shutdown()

    runs = results["runs"]
    base = runs["plain_loop"]["pages_per_second"]
    print(f"\n{args.pages} pages, {args.latency_ms} ms each:\n")
    print("| run | seconds | pages/s | vs plain loop |")
    print("|---|---|---|---|")
    for name, run in runs.items():
        if name.endswith("_0ms"):
            continue
        ratio = run["pages_per_second"] / base
        print(f"| {name} | {run['seconds']} | {run['pages_per_second']} | {ratio:.2f}x |")
    if "job_c1_0ms" in runs:
        plain, job = runs["plain_loop_0ms"], runs["job_c1_0ms"]
        plain_per_page = plain["seconds"] / plain["pages"]
        job_per_page = job["seconds"] / job["pages"]
        results["zero_latency_overhead_ratio"] = round(job_per_page / plain_per_page, 3)
        print(f"\n0 ms latency, {plain['pages']} pages, per page (browser start included):\n")
        print("| run | seconds | ms/page |")
        print("|---|---|---|")
        print(f"| plain_loop_0ms | {plain['seconds']} | {plain_per_page * 1000:.1f} |")
        print(f"| job_c1_0ms | {job['seconds']} | {job_per_page * 1000:.1f} |")
        print(f"\njob / plain per page: {job_per_page / plain_per_page:.2f}x")
        steady_plain = plain["seconds_per_page_after_start"]
        steady_job = job["seconds_per_page_steady"]
        results["zero_latency_steady_ratio"] = round(steady_job / steady_plain, 3)
        print(
            f"steady state (browser start and dispatch excluded): plain {steady_plain * 1000:.1f} ms/page, "
            f"job {steady_job * 1000:.1f} ms/page, {steady_job / steady_plain:.2f}x"
        )
    results.update(
        {
            "measured_at": datetime.now(UTC).isoformat(),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()},
            **commit(),
        }
    )
    out = REPO / "bench" / "results" / "batch_scrape.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
