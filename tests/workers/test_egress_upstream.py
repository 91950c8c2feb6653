"""The egress filter chaining to upstream proxies (issue 24's filter side), for real: mitmproxy
in this process, two upstream proxies of this test's own on loopback that count the tunnels
they open, a page server on 127.0.0.1, forbidden twins on 127.0.0.2."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from project.netpolicy import EgressPolicy
from tests.conftest import free_port
from tests.support.processes import start_egress, stop_process, wait_until
from tests.support.upstream_proxies import UpstreamProxy as _Proxy
from workers.egress import BLOCKED_HEADER, sandbox_uids
from workers.egress.dns import DnsConfig
from workers.egress.filter import EgressFilter
from workers.egress.upstream import Rule, Upstream


class _Page(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection alive (Content-Length on every answer)

    def do_GET(self) -> None:
        body = b"hello from " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxies() -> Iterator[tuple[_Proxy, _Proxy]]:
    a, b = _Proxy("A").start(), _Proxy("B", credentials="alice:s3cret-pw").start()
    yield a, b
    a.stop()
    b.stop()


class _Answers:
    async def __call__(self, host: str, port: int) -> list[str]:
        if host.endswith(".test"):
            return ["127.0.0.2"] if host.startswith("internal") else ["127.0.0.1"]
        raise OSError("no such name")


@dataclass
class _Filter:
    port: int
    egress: EgressFilter
    rules: list[Rule]

    def get(self, url: str) -> requests.Response:
        return requests.get(url, proxies={"http": f"http://127.0.0.1:{self.port}"}, timeout=10)


@pytest.fixture
def chained(tmp_path) -> Iterator[_Filter]:  # type: ignore[no-untyped-def]
    from workers.egress.__main__ import build_master

    rules: list[Rule] = []
    egress = EgressFilter(
        EgressPolicy.parse("127.0.0.1/32"),
        resolver=_Answers(),
        dns_config=DnsConfig(timeout=2, cache_seconds=0, negative_seconds=0),
        routes=lambda client: rules,
    )
    port = free_port()
    loop = asyncio.new_event_loop()
    masters = []

    async def run() -> None:
        master = build_master(host="127.0.0.1", port=port, egress_filter=egress, confdir=str(tmp_path))
        masters.append(master)
        await master.run()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(listening, timeout=15, message="the in-process filter to listen")
    yield _Filter(port=port, egress=egress, rules=rules)
    loop.call_soon_threadsafe(masters[0].shutdown)
    thread.join(timeout=10)
    loop.close()


def _connect_through(port: int, target: str, path: str) -> bytes:
    """A CONNECT tunnel through the filter (what Chromium does for HTTPS), then plain HTTP in it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        reply = sock.recv(4096)
        if not reply.startswith(b"HTTP/1.1 200"):
            return reply
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_the_default_rule_sends_everything_through_the_proxy(
    chained: _Filter, proxies: tuple[_Proxy, _Proxy], page_port: int
) -> None:
    a, b = proxies
    chained.rules[:] = [Rule(Upstream.parse(f"http://127.0.0.1:{a.port}", name="A"))]
    assert chained.get(f"http://pages.test:{page_port}/one").text == "hello from /one"
    assert b"hello from /two" in _connect_through(chained.port, f"pages.test:{page_port}", "/two")
    assert a.tunnels == [f"pages.test:{page_port}"] * 2 and b.tunnels == []
    # Metering: the filter counted what the proxy carried (both ways), give or take nothing.
    wait_until(lambda: sum(chained.egress.proxy_bytes.values()) == a.carried, timeout=5, message="counts")
    assert a.carried > 0


def test_a_domain_rule_sends_one_host_to_a_proxy_and_the_rest_direct(
    chained: _Filter, proxies: tuple[_Proxy, _Proxy], page_port: int
) -> None:
    a, _ = proxies
    chained.rules[:] = [
        Rule(Upstream.parse(f"http://127.0.0.1:{a.port}"), pattern="*.shop.test"),
        Rule(None),  # "direct"
    ]
    assert chained.get(f"http://www.shop.test:{page_port}/a").status_code == 200
    assert chained.get(f"http://shop.test:{page_port}/b").status_code == 200
    assert chained.get(f"http://news.test:{page_port}/c").status_code == 200
    assert a.tunnels == [f"www.shop.test:{page_port}", f"shop.test:{page_port}"]


def test_switching_the_rule_moves_the_next_connection_and_credentials_go_upstream_only(
    chained: _Filter, proxies: tuple[_Proxy, _Proxy], page_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = proxies
    chained.rules[:] = [Rule(Upstream.parse(f"http://127.0.0.1:{a.port}"))]
    assert chained.get(f"http://pages.test:{page_port}/").status_code == 200
    chained.rules[:] = [Rule(Upstream.parse(f"http://alice:s3cret-pw@127.0.0.1:{b.port}"))]
    assert chained.get(f"http://pages.test:{page_port}/").status_code == 200
    assert len(a.tunnels) == 1 and len(b.tunnels) == 1
    assert b.auth_seen == ["Basic " + base64.b64encode(b"alice:s3cret-pw").decode()]
    assert a.auth_seen == [""]
    # Wrong credentials: a 407 upstream is a failed connection whose text names no secret.
    caplog.set_level(logging.INFO)
    chained.rules[:] = [
        Rule(Upstream.parse(f"http://127.0.0.1:{b.port}", username="alice", password="wrong-pw"))
    ]
    with pytest.raises(requests.ConnectionError):
        chained.get(f"http://pages.test:{page_port}/")
    refused = _connect_through(chained.port, f"pages.test:{page_port}", "/")
    assert not refused.startswith(b"HTTP/1.1 200")
    assert "wrong-pw" not in caplog.text and "alice" not in caplog.text
    assert b"wrong-pw" not in refused
    assert "407" in caplog.text
    assert "s3cret" not in repr(chained.rules)


def test_a_dead_proxy_fails_the_connection_and_reaches_nothing(
    chained: _Filter, proxies: tuple[_Proxy, _Proxy], page_port: int
) -> None:
    chained.rules[:] = [Rule(Upstream.parse(f"http://127.0.0.1:{free_port()}"))]
    with pytest.raises(requests.ConnectionError):
        chained.get(f"http://pages.test:{page_port}/")


def test_a_dead_pool_member_is_taken_out_of_rotation_and_the_connection_moves(
    chained: _Filter, proxies: tuple[_Proxy, _Proxy], page_port: int
) -> None:
    a, b = proxies
    fallback = Upstream.parse(f"http://alice:s3cret-pw@127.0.0.1:{b.port}", name="pool-2")
    member = Upstream.parse(f"http://127.0.0.1:{a.port}", name="pool-1")
    chained.rules[:] = [Rule(dataclasses.replace(member, fallbacks=(fallback,)))]
    assert chained.get(f"http://pages.test:{page_port}/1").status_code == 200
    assert len(a.tunnels) == 1 and b.tunnels == []  # its own member first
    a.stop()
    # The member is dead: this very request goes through the next one, and so do the next ones
    # without trying the dead member again (out of rotation).
    assert chained.get(f"http://pages.test:{page_port}/2").status_code == 200
    assert chained.get(f"http://pages.test:{page_port}/3").status_code == 200
    assert len(b.tunnels) == 2
    assert list(chained.egress.pool_health._down_until) == [("127.0.0.1", a.port)]
    # Back in rotation after its time out: the session returns to its own member.
    revived = _Proxy("A again", listen_port=a.port).start()
    try:
        chained.egress.pool_health._down_until.clear()  # its retry time, passed
        assert chained.get(f"http://pages.test:{page_port}/4").status_code == 200
        assert len(revived.tunnels) == 1 and len(b.tunnels) == 2
    finally:
        revived.stop()


def test_a_proxy_at_a_forbidden_address_is_never_contacted(
    chained: _Filter, page_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    internal = _Proxy("internal", host="127.0.0.2").start()
    try:
        for proxy_url in (f"http://127.0.0.2:{internal.port}", f"http://internal-proxy.test:{internal.port}"):
            chained.rules[:] = [Rule(Upstream.parse(proxy_url))]
            with pytest.raises(requests.ConnectionError):
                chained.get(f"http://pages.test:{page_port}/")
        assert internal.tunnels == [] and internal.auth_seen == []
    finally:
        internal.stop()


def test_a_forbidden_target_is_refused_even_through_a_proxy(
    chained: _Filter, proxies: tuple[_Proxy, _Proxy], page_port: int
) -> None:
    a, _ = proxies
    chained.rules[:] = [Rule(Upstream.parse(f"http://127.0.0.1:{a.port}"))]
    for url in (f"http://127.0.0.2:{page_port}/", f"http://internal.test:{page_port}/"):
        refused = chained.get(url)
        assert refused.status_code == 403 and refused.headers[BLOCKED_HEADER] == "blocked_address"
    assert b"403" in _connect_through(chained.port, f"internal.test:{page_port}", "/")
    assert a.tunnels == []


def test_a_socks5_upstream_carries_the_connection_with_its_credentials(
    chained: _Filter, page_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    open_, locked = (
        _Proxy("S", protocol="socks5").start(),
        _Proxy("T", protocol="socks5", credentials="alice:s3cret-pw"),
    )
    locked.start()
    try:
        chained.rules[:] = [Rule(Upstream.parse(f"socks5://127.0.0.1:{open_.port}"))]
        assert chained.get(f"http://pages.test:{page_port}/s").text == "hello from /s"
        assert b"hello from /t" in _connect_through(chained.port, f"pages.test:{page_port}", "/t")
        assert open_.tunnels == [f"pages.test:{page_port}"] * 2  # the name, unresolved
        chained.rules[:] = [Rule(Upstream.parse(f"socks5://alice:s3cret-pw@127.0.0.1:{locked.port}"))]
        assert chained.get(f"http://pages.test:{page_port}/u").status_code == 200
        assert locked.auth_seen == ["alice:s3cret-pw"]
        caplog.set_level(logging.INFO)
        chained.rules[:] = [Rule(Upstream.parse(f"socks5://alice:wrong-pw@127.0.0.1:{locked.port}"))]
        with pytest.raises(requests.ConnectionError):
            chained.get(f"http://pages.test:{page_port}/v")
        assert "refused the credentials" in caplog.text and "wrong-pw" not in caplog.text
        assert len(locked.tunnels) == 1
    finally:
        open_.stop()
        locked.stop()


@pytest.mark.parametrize(
    "url", ["socks4://127.0.0.1:1080", "http://", "http://host:99999", "http://h:1/path", "ftp://h:1"]
)
def test_a_malformed_proxy_url_is_an_error_without_its_credentials(url: str) -> None:
    with pytest.raises(ValueError) as error:
        Upstream.parse(url.replace("//", "//user:pw-secret@", 1) if "//" in url else url)
    assert "pw-secret" not in str(error.value)


# The filter process as it runs in production, its routes from EGRESS_ROUTES_DIR -------------


@pytest.fixture
def filter_process(tmp_path) -> Iterator[tuple[int, Path]]:  # type: ignore[no-untyped-def]
    routes = tmp_path / "routes"
    routes.mkdir(mode=0o700)
    port = free_port()
    env = {
        **os.environ,
        "BROWSER_EGRESS_PORT": str(port),
        "BROWSER_EGRESS_ALLOW": "127.0.0.1/32",
        "EGRESS_ROUTES_DIR": str(routes),
    }
    process = start_egress(env=env, log=tmp_path / "egress.log")
    yield port, routes
    stop_process(process)
    assert "s3cret" not in (tmp_path / "egress.log").read_text()


def _write(routes: Path, document: object, mode: int = 0o600) -> None:
    path = routes / f"uid-{os.geteuid()}.json"
    path.write_text(json.dumps(document))
    path.chmod(mode)


def test_the_filter_process_routes_each_uid_by_its_file(
    filter_process: tuple[int, Path], proxies: tuple[_Proxy, _Proxy], page_port: int
) -> None:
    port, routes = filter_process
    a, b = proxies
    via = {"http": f"http://127.0.0.1:{port}"}
    target = f"http://127.0.0.1:{page_port}/"

    def get() -> requests.Response:
        return requests.get(target, proxies=via, timeout=10)

    assert get().status_code == 200 and a.tunnels == []  # no file: direct
    _write(routes, {"rules": [{"server": f"http://127.0.0.1:{a.port}", "name": "A"}]})
    assert get().status_code == 200 and len(a.tunnels) == 1
    # A change of proxy is a new file: the next connection goes through B, with B's credentials.
    _write(
        routes,
        {"rules": [{"server": f"http://127.0.0.1:{b.port}", "username": "alice", "password": "s3cret-pw"}]},
    )
    wait_until(lambda: get().status_code == 200 and len(b.tunnels) == 1, timeout=5, message="B")
    assert len(a.tunnels) == 1
    # A file anyone else could have written, or one that is not rules: refused, never direct.
    _write(routes, {"rules": [{"server": "direct"}]}, mode=0o666)
    with pytest.raises(requests.ConnectionError):
        get()
    _write(routes, {"rules": "nonsense"})
    with pytest.raises(requests.ConnectionError):
        get()
    _write(routes, {"rules": [{"server": "direct"}]})
    assert get().status_code == 200
    assert len(a.tunnels) == 1 and len(b.tunnels) == 1


_GET_AS = """
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": sys.argv[1]}))
try:
    print(opener.open(sys.argv[2], timeout=10).status)
except Exception as exc:
    print("failed", type(exc).__name__)
"""


def _get_as(uid: int, proxy: str, target: str) -> str:
    """A request through the filter from a process running as `uid` (a browser's sandbox uid)."""
    done = subprocess.run(
        ["/usr/bin/python3", "-c", _GET_AS, proxy, target],
        user=uid,
        group=uid,
        extra_groups=[],
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout.strip() or done.stderr.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to a sandbox uid needs root")
def test_a_sandbox_uid_without_a_route_file_is_refused_never_direct(
    filter_process: tuple[int, Path], page_port: int
) -> None:
    """Every browser that runs as a sandbox uid has a route file (`{"rules": []}` to go direct):
    one without (its route removed by mistake, or started around the worker) is refused."""
    port, routes = filter_process
    uid = sandbox_uids(dict(os.environ))[-1]  # the range's top: the leases reach it last
    proxy, target = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{page_port}/"
    path = routes / f"uid-{uid}.json"
    assert not path.exists()
    assert _get_as(uid, proxy, target).startswith("failed")
    path.write_text(json.dumps({"rules": []}))
    path.chmod(0o600)
    try:
        wait_until(lambda: _get_as(uid, proxy, target) == "200", timeout=10, message="the direct route")
    finally:
        path.unlink()
    assert _get_as(uid, proxy, target).startswith("failed")


def _keepalive_get(sock: socket.socket, target: str, path: str) -> bytes:
    """One GET on a kept-alive connection; the response's body (b"" when the connection closed)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += sock.recv(65536)
    return body


def test_a_changed_route_file_closes_the_uids_kept_alive_tunnels(
    filter_process: tuple[int, Path], proxies: tuple[_Proxy, _Proxy], page_port: int
) -> None:
    """change-proxy's promise: a tunnel the browser keeps alive through A does not outlive the
    switch, so the next request goes through B."""
    port, routes = filter_process
    a, b = proxies
    target = f"127.0.0.1:{page_port}"
    _write(routes, {"rules": [{"server": f"http://127.0.0.1:{a.port}", "name": "A"}]})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert _keepalive_get(sock, target, "/one") == b"hello from /one"
        assert _keepalive_get(sock, target, "/two") == b"hello from /two"  # the same tunnel
        assert a.tunnels == [target]
        _write(
            routes,
            {
                "rules": [
                    {"server": f"http://127.0.0.1:{b.port}", "username": "alice", "password": "s3cret-pw"}
                ]
            },
        )

        def closed() -> bool:
            try:
                return _keepalive_get(sock, target, "/three") == b""
            except OSError:
                return True

        wait_until(closed, timeout=5, message="the filter to close the tunnel through A")
    assert b"hello from /four" in _connect_through(port, target, "/four")
    assert a.tunnels == [target] and b.tunnels == [target]
