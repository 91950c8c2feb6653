"""Streams next to the API: does watching sessions slow the API down, and what do watchers get?

Runs the whole service (bench/harness.py) and, on one enterprise account, session A on a static
page and `--cast-sessions` live sessions whose pages change `--fps` times a second (0: without
end, requestAnimationFrame). Then, `--rounds` times:

1. `--shots` screenshots of A through the API (`POST .../screenshot`), one after another, with
   no stream open;
2. with `--event-streams` open `GET /v1/computers/{A}/events` streams (each receives the events
   of those screenshots), if any;
3. with `--screencasts` open `GET /v1/computers/{B}/screencast` streams, spread over the cast
   sessions, and the frames each delivered per second.

Streams are closed after their phase, and the next round waits until the hosts' casters have
stopped (nobody watching for WATCHER_TTL_SECONDS), so that "no stream" means no casting either.
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

import redis
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
const fps = Number(new URLSearchParams(location.search).get("fps") || 0);
function move(t) { b.style.left = (50 + 300 * (1 + Math.sin(t / 300))) + "px"; }
if (fps > 0) { setInterval(() => move(performance.now()), 1000 / fps); }
else { const step = (t) => { move(t); requestAnimationFrame(step); }; requestAnimationFrame(step); }
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


def _create(http: requests.Session, base: str, url: str) -> str:
    for _attempt in range(5):  # a start can time out on a saturated machine: the SDK retries
        created = http.post(base, json={}, timeout=HTTP_TIMEOUT)
        if created.status_code != 503:
            break
        log(f"create: 503, again ({created.json().get('code')})")
    if created.status_code != 201:
        raise RuntimeError(f"create: {created.status_code} {created.text[:300]}")
    session_id = str(created.json()["id"])
    nav = http.post(f"{base}/{session_id}/navigate", json={"url": url}, timeout=HTTP_TIMEOUT)
    if nav.json().get("status") != "success":
        raise RuntimeError(f"navigate: {nav.text[:300]}")
    return session_id


def _casters_idle(stack: Stack, cast_ids: list[str]) -> bool:
    """No cast session is watched any more (its host's caster stops within a poll of that)."""
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    cutoff = time.time() - 10  # sessions/screencast.py's WATCHER_TTL_SECONDS
    return all(not client.zcount(f"bf:cast:watchers:{s}", cutoff, "+inf") for s in cast_ids)


def run(args: argparse.Namespace, pages: str) -> dict[str, Any]:
    overrides = {"ACCOUNT_MAX_OPEN_STREAMS": str(args.event_streams + args.screencasts + 10)}
    with running_stack(name="streams", env_overrides=overrides) as stack:
        key = stack.make_account(plan="enterprise")
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {key}"
        base = f"{stack.base_url}/v1/computers"
        session_a = _create(http, base, pages + "/static")
        cast_ids = [
            _create(http, base, f"{pages}/animated?fps={args.fps}") for _ in range(args.cast_sessions)
        ]
        host, port = stack.base_url.removeprefix("http://").split(":")
        _shots(http, base, session_a, args.warmup)
        phases: dict[str, Any] = {}
        pooled: dict[str, list[float]] = {}

        def phase(name: str, readers: list[StreamReader], condition: str) -> None:
            for r in readers:
                r.counting = True
            cpu_before, load_before, started = _cpu(stack), loadavg(), time.monotonic()
            samples = _shots(http, base, session_a, args.shots)
            pooled.setdefault(condition, []).extend(samples)
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
            for r in readers:
                r.close()
            log(f"{name}: {json.dumps(phases[name])}")

        def open_streams(n: int, path_of: Any, kind: str) -> list[StreamReader]:
            readers = []
            for i in range(n):
                r = StreamReader(host, int(port), path_of(i), key)
                r.name = kind
                r.start()
                readers.append(r)
            return readers

        for round_no in range(1, args.rounds + 1):
            deadline = time.monotonic() + 60
            while not _casters_idle(stack, cast_ids) and time.monotonic() < deadline:
                time.sleep(1)
            time.sleep(2)  # the supervisor's poll and the caster's last frames
            for session_id in cast_ids:  # watching is not activity: keep them from idling out
                http.post(f"{base}/{session_id}/keepalive", json={}, timeout=HTTP_TIMEOUT)
            phase(f"round {round_no}: no stream", [], "no stream")
            if args.event_streams:
                events = open_streams(
                    args.event_streams, lambda i: f"/v1/computers/{session_a}/events", "events"
                )
                phase(f"round {round_no}: {args.event_streams} event streams", events, "event streams")
            casts = open_streams(
                args.screencasts,
                lambda i: f"/v1/computers/{cast_ids[i % len(cast_ids)]}/screencast",
                "screencast",
            )
            time.sleep(3)  # the hosts' casters start within a poll; the first frames flow
            phase(
                f"round {round_no}: {args.screencasts} screencasts of {len(cast_ids)} live sessions",
                casts,
                "screencasts",
            )
        for session_id in [session_a, *cast_ids]:
            http.delete(f"{base}/{session_id}", timeout=HTTP_TIMEOUT)
        # All rounds' screenshots of a condition together: a p99 of 100 samples is one sample.
        phases["all rounds"] = {condition: stats_ms(samples) for condition, samples in pooled.items()}
        return phases


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Streams, {results['date']}, commit {results['machine'].get('git_commit', '?')}, "
        f"{results['machine'].get('nproc', '?')} CPUs",
        "",
        "| phase | open streams | screenshot median ms | p90 | p99 | fps per screencast (min/median/max)"
        " | web CPU s | worker CPU s | load before -> after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    phases = dict(results["phases"])
    pooled = phases.pop("all rounds", {})
    for name, p in phases.items():
        s = p["screenshot_ms"]
        fps = p.get("fps_per_stream")
        fps_text = f"{fps['min']} / {fps['median']} / {fps['max']}" if fps else "-"
        lines.append(
            f"| {name} | {p['open_streams']} | {s['median']} | {s['p90']} | {s['p99']} | {fps_text} | "
            f"{p['cpu_seconds'].get('web', '-')} | {p['cpu_seconds'].get('worker', '-')} | "
            f"{p['loadavg'][0][0]} -> {p['loadavg'][1][0]} |"
        )
    if pooled:
        lines += ["", "| all rounds | screenshots | median ms | p90 | p99 |", "|---|---|---|---|---|"]
        for condition, stats in pooled.items():
            lines.append(
                f"| {condition} | {stats['n']} | {stats['median']} | {stats['p90']} | {stats['p99']} |"
            )
        base, watched = pooled.get("no stream"), pooled.get("screencasts")
        if base and watched and base["p99"]:
            lines.append(f"\nscreenshot p99 with the screencasts: {watched['p99'] / base['p99'] - 1:+.0%}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shots", type=int, default=100, help="screenshots per phase (100)")
    parser.add_argument("--warmup", type=int, default=10, help="uncounted screenshots first (10)")
    parser.add_argument("--event-streams", type=int, default=0, help="open event streams (0: no such phase)")
    parser.add_argument("--screencasts", type=int, default=100, help="open screencast streams (100)")
    parser.add_argument("--cast-sessions", type=int, default=2, help="live sessions they watch (2)")
    parser.add_argument("--fps", type=float, default=5, help="changes per second of their pages (5; 0: rAF)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of phases, interleaved (2)")
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
