"""How fast an oversized job submit is refused (issue 19 item 2).

    bin/dev bench job_submit_refusal [--repeat 20] [--urls 100000]

Against the whole stack (gunicorn as deployed), a free-plan account POSTs:

a) `--urls` URLs (100,000: ~3 MB of JSON), refused from its Content-Length before the body is
   read (413 `payload_too_large`);
b) 101 URLs, a small body: parsed, then refused by the URL count before any URL is parsed or
   looked up (400 `job_too_large`);
c) 100 URLs (the plan's limit), accepted (201), for scale; its job is cancelled at once.

URLs are address literals (http://127.0.0.1:9/n): nothing is ever looked up in DNS, whatever the
code does. Times are client-side, request sent to answer read, after one warm-up each.
Prints a Markdown table and writes JSON to bench/results/job_submit_refusal.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import requests
from harness import REPO, log, running_stack


def _timed(session: requests.Session, url: str, body: bytes, key: str, expect: int) -> tuple[float, Any]:
    started = time.perf_counter()
    response = session.post(
        url,
        data=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=120,
    )
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != expect:
        raise RuntimeError(f"expected {expect}, got {response.status_code}: {response.text[:300]}")
    return elapsed, response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--urls", type=int, default=100_000)
    parser.add_argument("--redis-db", type=int, default=13)
    args = parser.parse_args()
    cases = {
        "oversized_body": ([f"http://127.0.0.1:9/{n}" for n in range(args.urls)], 413),
        "over_url_count": ([f"http://127.0.0.1:9/{n}" for n in range(101)], 400),
        "accepted_100": ([f"http://127.0.0.1:9/{n}" for n in range(100)], 201),
    }
    results: dict[str, Any] = {"repeat": args.repeat, "load_before": os.getloadavg(), "runs": {}}
    with running_stack(name="job_submit_refusal", redis_db=args.redis_db) as stack:
        key = stack.make_account(plan="free", credits=10**9)
        url = stack.base_url + "/v1/jobs"
        session = requests.Session()
        for name, (urls, expect) in cases.items():
            body = json.dumps({"urls": urls}).encode()
            times = []
            for attempt in range(args.repeat + 1):
                elapsed, answer = _timed(session, url, body, key, expect)
                if expect == 201:
                    session.post(
                        f"{url}/{answer['id']}/cancel", headers={"Authorization": f"Bearer {key}"}, timeout=60
                    )
                if attempt:
                    times.append(elapsed)
            times.sort()
            results["runs"][name] = {
                "status": expect,
                "body_bytes": len(body),
                "median_ms": round(statistics.median(times), 1),
                "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
                "max_ms": round(times[-1], 1),
            }
            log(f"{name}: {results['runs'][name]}")
    results["load_after"] = os.getloadavg()
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    results["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out = REPO / "bench" / "results" / "job_submit_refusal.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("\n| case | status | body | median | p95 | max |\n|---|---|---|---|---|---|")
    for name, run in results["runs"].items():
        print(
            f"| {name} | {run['status']} | {run['body_bytes']:,} B | {run['median_ms']} ms | "
            f"{run['p95_ms']} ms | {run['max_ms']} ms |"
        )
    print(f"\nload average before {results['load_before']}, after {results['load_after']}")


if __name__ == "__main__":
    main()
