"""What the egress filter costs a page load.

    bin/dev bench egress_overhead [--loads 40] [--images 10]

Serves a page with `--images` images on 127.0.0.1, starts the filter (`python -m workers.egress`
on a free port, 127.0.0.1 allowed) and two headless Chromiums with the project's flags: one
through the filter (the flags workers/browser/egress.py adds), one without. Each loads the page
`--loads` times (unique query strings, so the document and its images are fetched every time)
and the WebDriver `get` is timed; also timed: one plain HTTP GET with and without the filter,
and the script the worker runs after each navigation to recognise a refusal page.

With an upstream proxy in the chain (issue 24): a second filter process serves as the upstream
(a plain CONNECT-capable proxy), and a third one routes this process's uid to it through
EGRESS_ROUTES_DIR, as a browser with `proxies` would be routed. The GETs are timed through the
upstream alone and through the chain; the chain's extra cost is chain minus filter alone, per
request on a kept-alive connection and per new connection. `--http-only` skips the browsers.

Prints medians (ms) and writes JSON to bench/results/egress_overhead.json.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from workers.egress import HEALTH_BODY, HEALTH_HOST  # noqa: E402

# The same script as workers/browser/egress.py REFUSAL_SCRIPT (that module needs Django settings).
REFUSAL_SCRIPT = (
    "const p = document.title === 'Blocked by the Browserfleet egress filter' &&"
    " document.getElementById('browserfleet-blocked'); return p ? p.dataset.code : null;"
)
# Failed samples (not timed), by path: reported with the figures, never retried silently.
ERRORS: dict[str, int] = {}
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360"
    "00000000050001a5f645400000000049454e44ae426082"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_pages(images: int) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: without this, Nagle and delayed ACKs add 40 ms.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path.startswith("/img"):
                body, kind = PIXEL, "image/png"
            else:
                tag = self.path.partition("?")[2]
                imgs = "".join(f'<img src="/img{i}.png?{tag}">' for i in range(images))
                body, kind = f"<title>bench</title>{imgs}".encode(), "text/html"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def handle(self) -> None:
            # Chromium drops idle keep-alive connections when it quits.
            with contextlib.suppress(ConnectionError):
                super().handle()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def start_filter(port: int, routes_dir: str = "") -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BROWSER_EGRESS_ALLOW": "127.0.0.1/32",
        "BROWSERFLEET_ENV": "development",
        "EGRESS_ROUTES_DIR": routes_dir,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.egress", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", f"http://{HEALTH_HOST}/", headers={"Host": HEALTH_HOST})
            if connection.getresponse().read() == HEALTH_BODY:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the egress filter did not start")


def chromium(proxy_port: int | None, profile: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
    ):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    if proxy_port is not None:
        options.add_argument(f"--proxy-server=http://127.0.0.1:{proxy_port}")
        options.add_argument("--proxy-bypass-list=<-loopback>")
        options.add_argument("--force-webrtc-ip-handling-policy=disable_non_proxied_udp")
    service = Service(executable_path=os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver"))
    return webdriver.Chrome(options=options, service=service)


def time_loads(driver: webdriver.Chrome, base: str, loads: int, label: str) -> list[float]:
    driver.get(f"{base}/page?warmup-{label}")
    samples = []
    for i in range(loads):
        started = time.perf_counter()
        driver.get(f"{base}/page?{label}-{i}")
        samples.append((time.perf_counter() - started) * 1000)
        assert driver.title == "bench"
    return samples


def time_http(base: str, proxy_port: int | None, count: int, *, reuse: bool) -> list[float]:
    """GETs of a small image: each on a new connection, or all on one kept-alive connection."""
    host, port = base.removeprefix("http://").split(":")
    address = ("127.0.0.1", proxy_port) if proxy_port else (host, int(port))
    samples = []
    connection = http.client.HTTPConnection(*address, timeout=5)
    for i in range(count):
        path = f"/img0.png?h{i}"
        started = time.perf_counter()
        if not reuse:
            connection = http.client.HTTPConnection(*address, timeout=5)
        try:
            connection.request("GET", base + path if proxy_port else path)
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            ERRORS[f"http:{proxy_port}:{reuse}"] = ERRORS.get(f"http:{proxy_port}:{reuse}", 0) + 1
            connection.close()
            connection = http.client.HTTPConnection(*address, timeout=5)
            continue
        if not reuse:
            connection.close()
        samples.append((time.perf_counter() - started) * 1000)
    connection.close()
    return samples


class _SkipBrowsers(Exception):
    pass


def time_tunnel(base: str, proxy_port: int | None, count: int, *, reuse: bool) -> list[float]:
    """As Chromium does for HTTPS: a CONNECT tunnel through the proxy (timed with its first GET
    when not `reuse`), or GETs inside one kept-open tunnel (`reuse`). Direct: a plain socket."""
    host, port = base.removeprefix("http://").split(":")

    def open_tunnel() -> socket.socket:
        if proxy_port is None:
            return socket.create_connection((host, int(port)), timeout=5)
        sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=5)
        sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:80]
        return sock

    def get(sock: socket.socket, i: int) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        connection.sock = sock
        connection.request("GET", f"/img0.png?t{i}")
        connection.getresponse().read()

    samples = []
    kept = open_tunnel() if reuse else None
    for i in range(count):
        started = time.perf_counter()
        try:
            sock = kept or open_tunnel()
            get(sock, i)
        except (OSError, AssertionError, http.client.HTTPException):
            ERRORS[f"tunnel:{proxy_port}:{reuse}"] = ERRORS.get(f"tunnel:{proxy_port}:{reuse}", 0) + 1
            kept = open_tunnel() if reuse else None
            continue
        if kept is None:
            sock.close()
        samples.append((time.perf_counter() - started) * 1000)
    if kept is not None:
        kept.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loads", type=int, default=40)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--gets", type=int, default=200)
    parser.add_argument("--http-only", action="store_true")
    args = parser.parse_args()

    server, base = serve_pages(args.images)
    port, upstream_port, chained_port = free_port(), free_port(), free_port()
    routes = tempfile.TemporaryDirectory()
    rules = Path(routes.name) / f"uid-{os.geteuid()}.json"
    rules.write_text(
        json.dumps({"rules": [{"server": f"http://127.0.0.1:{upstream_port}", "name": "bench"}]})
    )
    rules.chmod(0o600)
    egress = start_filter(port)
    upstream = start_filter(upstream_port)
    chained = start_filter(chained_port, routes.name)
    drivers: list[webdriver.Chrome] = []
    direct_ms: list[float] = []
    proxied_ms: list[float] = []
    script_ms: list[float] = []
    via = {"direct": None, "through_filter": port, "through_upstream_alone": upstream_port}
    via["through_filter_and_upstream"] = chained_port
    try:
        # Interleaved: each round times every path once, so machine noise falls on all alike.
        samples: dict[tuple[str, bool], list[float]] = {(k, r): [] for k in via for r in (False, True)}
        tunnels: dict[tuple[str, bool], list[float]] = {(k, r): [] for k in via for r in (False, True)}
        for _ in range(4):
            for kind, proxy_port in via.items():
                for reuse in (False, True):
                    samples[(kind, reuse)] += time_http(base, proxy_port, args.gets // 4, reuse=reuse)
                    tunnels[(kind, reuse)] += time_tunnel(base, proxy_port, args.gets // 4, reuse=reuse)
        http_ms = {key: statistics.median(values) for key, values in samples.items()}
        tunnel_ms = {key: statistics.median(values) for key, values in tunnels.items()}
        if args.http_only:
            raise _SkipBrowsers
        with tempfile.TemporaryDirectory() as direct_dir, tempfile.TemporaryDirectory() as proxied_dir:
            direct = chromium(None, direct_dir)
            drivers.append(direct)
            proxied = chromium(port, proxied_dir)
            drivers.append(proxied)
            # Alternate the two so that machine noise falls on both alike.
            for round_ in range(4):
                direct_ms += time_loads(direct, base, args.loads // 4, f"d{round_}")
                proxied_ms += time_loads(proxied, base, args.loads // 4, f"p{round_}")
            for _ in range(args.loads):
                started = time.perf_counter()
                proxied.execute_script(REFUSAL_SCRIPT)
                script_ms.append((time.perf_counter() - started) * 1000)
            for driver in drivers:
                driver.quit()
            drivers.clear()
    except _SkipBrowsers:
        pass
    finally:
        for driver in drivers:
            driver.quit()
        for process in (egress, upstream, chained):
            process.terminate()
            process.wait(timeout=10)
        server.shutdown()
        routes.cleanup()

    def median(values: list[float], digits: int) -> float | None:
        return round(statistics.median(values), digits) if values else None

    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "loads": args.loads,
        "images_per_page": args.images,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "page_load_median_ms": {"direct": median(direct_ms, 2), "through_filter": median(proxied_ms, 2)},
        "http_get_new_connection_median_ms": {
            k: round(v, 3) for (k, reuse), v in http_ms.items() if not reuse
        },
        "http_get_kept_alive_median_ms": {k: round(v, 3) for (k, reuse), v in http_ms.items() if reuse},
        "tunnel_new_with_first_get_median_ms": {
            k: round(v, 3) for (k, reuse), v in tunnel_ms.items() if not reuse
        },
        "tunnel_get_inside_open_tunnel_median_ms": {
            k: round(v, 3) for (k, reuse), v in tunnel_ms.items() if reuse
        },
        "refusal_check_script_median_ms": median(script_ms, 3),
        "failed_samples": {
            key.replace(f":{port}:", ":through_filter:")
            .replace(f":{upstream_port}:", ":through_upstream_alone:")
            .replace(f":{chained_port}:", ":through_filter_and_upstream:")
            .replace(":None:", ":direct:"): count
            for key, count in ERRORS.items()
        },
    }
    if direct_ms:
        print(f"page load ({args.images} images), median of {args.loads}:")
        print(f"  direct          {result['page_load_median_ms']['direct']:8.2f} ms")
        print(f"  through filter  {result['page_load_median_ms']['through_filter']:8.2f} ms")
    for label, key in (
        ("new connection", "http_get_new_connection_median_ms"),
        ("kept alive", "http_get_kept_alive_median_ms"),
        ("CONNECT tunnel + first GET", "tunnel_new_with_first_get_median_ms"),
        ("inside an open tunnel", "tunnel_get_inside_open_tunnel_median_ms"),
    ):
        print(f"one HTTP GET ({label}), median of {args.gets}:")
        for kind in via:
            print(f"  {kind:28s} {result[key][kind]:8.3f} ms")
    if script_ms:
        check = result["refusal_check_script_median_ms"]
        print(f"refusal check after a navigation (one script): {check:.3f} ms")
    print(f"failed samples: {result['failed_samples'] or 'none'}")
    print(f"load average: {result['load_average']}")
    out = REPO / "bench" / "results" / "egress_overhead.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
