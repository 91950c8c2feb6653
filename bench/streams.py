"""Streams next to the API: does watching sessions slow the API down, and what do watchers get?

Runs the whole service (bench/harness.py) and, on one enterprise account:

1. session A on a static page: `--shots` screenshots through the API (`POST .../screenshot`),
   one after another, with 0 open streams;
2. the same with `--event-streams` open `GET /v1/computers/{A}/events` streams (each receives
   the events of those screenshots: request and response);
3. the same with `--screencasts` open `GET /v1/computers/{B}/screencast` streams of session B,
   whose page animates without end (frames as fast as the browser sends them), and the frames
   each screencast stream delivered per second.

It prints the screenshot latencies per phase, the frames per second delivered per screencast
stream, and the CPU seconds the web and worker process groups used per phase.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from action_roundtrip import stats_ms
from harness import REPO, Stack, free_port, loadavg, log, report_header, report_write, running_stack

HTTP_TIMEOUT = 60

STATIC = b"<!DOCTYPE html><title>static</title><h1>A static page</h1>"
ANIMATED = b"""<!DOCTYPE html><title>animated</title>
<style>body{margin:0} #b{position:absolute;top:50px;width:120px;height:120px;background:#c03}</style>
<div id="b"></div>
<script>
const b = document.getElementById("b");
function step(t) { b.style.left = (50 + 300 * (1 + Math.sin(t / 300))) + "px"; requestAnimationFrame(step); }
requestAnimationFrame(step);
</script>"""


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = ANIMATED if self.path.startswith("/animated") else STATIC
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving_pages() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class StreamReader(threading.Thread):
    """One open SSE stream on a raw socket: counts the frames (or events) it receives."""

    MARK = b'{"image_data":'

    def __init__(self, host: str, port: int, path: str, key: str) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        head = self.sock.recv(4096)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"stream refused: {head[:300]!r}")
        self.frames = 0
        self.bytes = 0
        self.counting = False
        self.closed = threading.Event()

    def run(self) -> None:
        tail = b""
        try:
            while not self.closed.is_set():
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    return
                if self.counting:
                    data = tail + chunk
                    self.frames += data.count(self.MARK)
                    self.bytes += len(chunk)
                    tail = data[-(len(self.MARK) - 1) :]
        except OSError:
            return

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


def _group_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of every process in `pid`'s process group."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return 0.0
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _cpu(stack: Stack) -> dict[str, float]:
    return {
        name: _group_cpu_seconds(p.pid) for name, p in stack.processes.items() if name in ("web", "worker")
    }


def _shots(http: requests.Session, base: str, session_id: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        reply = http.post(f"{base}/{session_id}/screenshot", json={}, timeout=HTTP_TIMEOUT)
        elapsed = time.perf_counter() - started
        if reply.status_code != 200 or reply.json().get("status") != "success":
            raise RuntimeError(f"screenshot: {reply.status_code} {reply.text[:300]}")
        out.append(elapsed)
    return out


def run(args: argparse.Namespace, pages: str) -> dict[str, Any]:
    overrides = {"ACCOUNT_MAX_OPEN_STREAMS": str(args.event_streams + args.screencasts + 10)}
    with running_stack(name="streams", env_overrides=overrides) as stack:
        key = stack.make_account(plan="enterprise")
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {key}"
        base = f"{stack.base_url}/v1/computers"
        ids = []
        for page in ("/static", "/animated"):
            for _attempt in range(5):  # a start can time out on a saturated machine: the SDK retries
                created = http.post(base, json={}, timeout=HTTP_TIMEOUT)
                if created.status_code != 503:
                    break
                log(f"create: 503, again ({created.json().get('code')})")
            if created.status_code != 201:
                raise RuntimeError(f"create: {created.status_code} {created.text[:300]}")
            ids.append(created.json()["id"])
            nav = http.post(f"{base}/{ids[-1]}/navigate", json={"url": pages + page}, timeout=HTTP_TIMEOUT)
            if nav.json().get("status") != "success":
                raise RuntimeError(f"navigate: {nav.text[:300]}")
        session_a, session_b = ids
        host, port = stack.base_url.removeprefix("http://").split(":")
        _shots(http, base, session_a, args.warmup)
        phases: dict[str, Any] = {}

        def phase(name: str, readers: list[StreamReader]) -> None:
            for r in readers:
                r.counting = True
            cpu_before, load_before, started = _cpu(stack), loadavg(), time.monotonic()
            samples = _shots(http, base, session_a, args.shots)
            if readers and time.monotonic() - started < args.seconds:
                time.sleep(args.seconds - (time.monotonic() - started))
            duration = time.monotonic() - started
            cpu_after = _cpu(stack)
            phases[name] = {
                "open_streams": len(readers),
                "screenshot_ms": stats_ms(samples),
                "duration_seconds": round(duration, 2),
                "cpu_seconds": {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 2) for k in cpu_after},
                "loadavg": [load_before, loadavg()],
            }
            casts = [r for r in readers if "screencast" in r.name]
            if casts:
                fps = sorted(r.frames / duration for r in casts)
                phases[name]["fps_per_stream"] = {
                    "min": round(fps[0], 2),
                    "median": round(fps[len(fps) // 2], 2),
                    "max": round(fps[-1], 2),
                }
                phases[name]["kbytes_per_second_per_stream"] = round(
                    sum(r.bytes for r in casts) / len(casts) / duration / 1024, 1
                )
            log(f"{name}: {json.dumps(phases[name])}")

        phase("0 streams", [])
        events = []
        for _ in range(args.event_streams):
            r = StreamReader(host, int(port), f"/v1/computers/{session_a}/events", key)
            r.name = "events"
            r.start()
            events.append(r)
        phase(f"{args.event_streams} event streams", events)
        casts = []
        for _ in range(args.screencasts):
            r = StreamReader(host, int(port), f"/v1/computers/{session_b}/screencast", key)
            r.name = "screencast"
            r.start()
            casts.append(r)
        time.sleep(2)  # the host's caster starts within a poll; the first frames flow
        phase(f"{args.event_streams} event streams + {args.screencasts} screencasts", events + casts)
        for r in events + casts:
            r.close()
        for session_id in ids:
            http.delete(f"{base}/{session_id}", timeout=HTTP_TIMEOUT)
        return phases


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Streams, {results['date']}, commit {results['machine'].get('commit', '?')}, "
        f"{results['machine'].get('nproc', '?')} CPUs",
        "",
        "| phase | open streams | screenshot median ms | p90 | p99 | fps per screencast (min/median/max)"
        " | web CPU s | worker CPU s | load before -> after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in results["phases"].items():
        s = p["screenshot_ms"]
        fps = p.get("fps_per_stream")
        fps_text = f"{fps['min']} / {fps['median']} / {fps['max']}" if fps else "-"
        lines.append(
            f"| {name} | {p['open_streams']} | {s['median']} | {s['p90']} | {s['p99']} | {fps_text} | "
            f"{p['cpu_seconds'].get('web', '-')} | {p['cpu_seconds'].get('worker', '-')} | "
            f"{p['loadavg'][0][0]} -> {p['loadavg'][1][0]} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shots", type=int, default=100, help="screenshots per phase (100)")
    parser.add_argument("--warmup", type=int, default=10, help="uncounted screenshots first (10)")
    parser.add_argument("--event-streams", type=int, default=100, help="open event streams (100)")
    parser.add_argument("--screencasts", type=int, default=10, help="open screencast streams (10)")
    parser.add_argument("--seconds", type=float, default=10.0, help="least length of a phase with streams")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "streams.json")
    args = parser.parse_args()
    results: dict[str, Any] = {
        **report_header("streams"),
        "config": {k: v for k, v in vars(args).items() if k != "output"},
    }
    with serving_pages() as pages:
        results["phases"] = run(args, pages)
    report_write(results, args.output, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
