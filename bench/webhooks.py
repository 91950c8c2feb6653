"""Webhook deliveries to a slow receiver while a session acts.

    bin/dev bench webhooks [--events 1000] [--actions 200] [--workers 4] [--receiver-ms 200]

One enterprise account with one endpoint (`*`) pointing at a receiver this script serves on
127.0.0.1, which answers every POST after `--receiver-ms`. One session runs the cheapest action
(`wait 0`, the pipeline alone) in a loop, in three phases of `--actions` each:

- quiet:    no deliveries;
- busy:     `--events` events were just written to the outbox (one INSERT of events and one of
            deliveries, as producers write them; the Beat sweep sends them), and the webhooks
            worker (`--workers` prefork processes) delivers them through the egress filter
            meanwhile;
- quiet again, after the last delivery (the first phase's figures, minus drift).

Reported: action round trip p50/p99 per phase, and deliveries per second (all and per worker
process) from the first delivery to the last, as the receiver counted them. Writes JSON to
bench/results/webhooks.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from harness import REPO, loadavg, log, machine_info, percentile, running_stack

HTTP_TIMEOUT = 60


class _Receiver:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.times: list[float] = []
        self.ids: set[str] = set()
        self.lock = threading.Lock()


@contextmanager
def slow_receiver(delay_ms: int) -> Iterator[tuple[str, _Receiver]]:
    state = _Receiver(delay_ms / 1000)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(state.delay)
            with state.lock:
                state.times.append(time.monotonic())
                state.ids.add(self.headers.get("webhook-id", ""))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", state
    finally:
        server.shutdown()
        server.server_close()


def _actions(http: requests.Session, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        reply = http.post(url, json={"action": {"type": "wait", "ms": 0}}, timeout=HTTP_TIMEOUT)
        out.append((time.perf_counter() - started) * 1000)
        if reply.status_code != 200:
            raise RuntimeError(f"action: {reply.status_code} {reply.text[:200]}")
    return out


def _stats(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50": round(percentile(ms, 50), 2), "p99": round(percentile(ms, 99), 2)}


_INSERT_EVENTS = """
    INSERT INTO webhooks_event (id, account_id, type, payload, created_at)
    SELECT 'evt_bench' || lpad(n::text, 8, '0'), %(account)s, 'webhook.test',
           jsonb_build_object('id', 'evt_bench' || lpad(n::text, 8, '0'), 'type', 'webhook.test',
                              'data', jsonb_build_object('n', n)),
           now()
    FROM generate_series(1, %(events)s) AS n
"""
_INSERT_DELIVERIES = """
    INSERT INTO webhooks_delivery
        (event_id, endpoint_id, status, attempts, next_attempt_at, last_error, created_at)
    SELECT id, %(endpoint)s, 'pending', 0, now(), '', now() FROM webhooks_event WHERE id LIKE 'evt_bench%%'
"""


def run(*, events: int, actions: int, workers: int, receiver_ms: int) -> dict[str, Any]:
    with (
        slow_receiver(receiver_ms) as (hook_url, receiver),
        # Generous browser start limits: on a machine shared with other work a start can take
        # longer than the default 20 s; the figures measured here come after it.
        running_stack(
            name="webhooks",
            webhooks_worker_concurrency=workers,
            env_overrides={"BROWSER_START_TIMEOUT_SECONDS": "90", "SESSION_CREATE_WAIT_SECONDS": "55"},
        ) as stack,
    ):
        key = stack.make_account(plan="enterprise")
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {key}"
        base = stack.base_url
        endpoint = http.post(f"{base}/v1/webhooks", json={"url": hook_url}, timeout=HTTP_TIMEOUT)
        if endpoint.status_code != 201:
            raise RuntimeError(f"endpoint: {endpoint.status_code} {endpoint.text[:300]}")
        endpoint_id = endpoint.json()["id"]
        account_id = stack.db_query("SELECT account_id FROM webhooks_endpoint WHERE id = %s", [endpoint_id])[
            0
        ][0]
        for _ in range(5):  # a browser that cannot start on a loaded machine is a 503 to retry
            # No idle timeout: the session waits, idle, while many events are delivered (10,000
            # take longer than the default inactivity timeout) and acts again afterwards.
            created = http.post(
                f"{base}/v1/computers", json={"idle_timeout_enabled": False}, timeout=HTTP_TIMEOUT
            )
            if created.status_code != 503:
                break
        if created.status_code != 201:
            raise RuntimeError(f"create: {created.status_code} {created.text[:300]}")
        session_id = created.json()["id"]
        action_url = f"{base}/v1/computers/{session_id}/execute"
        _actions(http, action_url, 20)  # warm-up

        load = {"before": loadavg()}
        quiet = _actions(http, action_url, actions)
        stack.db_query(_INSERT_EVENTS, {"account": account_id, "events": events})
        stack.db_query(_INSERT_DELIVERIES, {"endpoint": endpoint_id})
        written = time.monotonic()
        log(f"{events} events written; acting while they are delivered")
        busy = _actions(http, action_url, actions)
        busy_done = time.monotonic()
        load["busy"] = loadavg()
        deadline = time.monotonic() + max(600, events * receiver_ms / 1000 / workers * 3)
        while len(receiver.ids) < events and time.monotonic() < deadline:
            time.sleep(0.5)
        with receiver.lock:
            times = sorted(receiver.times)
            unique = len(receiver.ids)
        if unique < events:
            raise RuntimeError(f"only {unique} of {events} events arrived")
        after = _actions(http, action_url, actions)
        load["after"] = loadavg()
        http.delete(f"{base}/v1/computers/{session_id}", timeout=HTTP_TIMEOUT)
        first, last = times[0], times[-1]
        rate = (len(times) - 1) / (last - first) if last > first else float("nan")
        delivered = stack.db_query("SELECT count(*) FROM webhooks_delivery WHERE status = 'delivered'")[0][0]
        result = {
            "events": events,
            "posts_received": len(times),
            "unique_events_received": unique,
            "delivered_rows": delivered,
            "receiver_ms": receiver_ms,
            "webhooks_worker_processes": workers,
            "first_delivery_after_write_s": round(first - written, 2),
            "all_delivered_after_write_s": round(last - written, 2),
            "busy_phase_s": round(busy_done - written, 2),
            "busy_phase_share_with_deliveries": round(
                min(1.0, (last - written) / max(busy_done - written, 1e-9)), 2
            ),
            "deliveries_per_second": round(rate, 2),
            "deliveries_per_second_per_process": round(rate / workers, 2),
            "ceiling_per_process": round(1000 / receiver_ms, 2),
            "actions_ms": {"quiet": _stats(quiet), "busy": _stats(busy), "quiet_after": _stats(after)},
            "loadavg": load,
        }
    result["leaked_browser_processes"] = stack.leaked
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--actions", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--receiver-ms", type=int, default=200)
    args = parser.parse_args()
    result = run(events=args.events, actions=args.actions, workers=args.workers, receiver_ms=args.receiver_ms)
    result["machine"] = machine_info()
    result["finished_at"] = datetime.now(UTC).isoformat()
    out = REPO / "bench" / "results" / "webhooks.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return 0 if not result["leaked_browser_processes"] else 1


if __name__ == "__main__":
    sys.exit(main())
