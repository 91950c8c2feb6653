"""The egress policy and the filter's decisions, without a browser.

The address table pins what project/netpolicy.py refuses. The filter's hooks run with an
injected resolver, which is how DNS rebinding is modelled without touching the system's
resolver: a name whose answer changes between two lookups.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.test import override_settings
from mitmproxy import http
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import tflow

from project.netpolicy import EgressPolicy, PolicyError
from tests.conftest import free_port
from tests.support.processes import browser_processes, wait_until
from workers.browser.base import Display
from workers.browser.egress import chromium_args, ensure_ready
from workers.browser.errors import BrowserStartError
from workers.egress import BLOCKED_HEADER, HEALTH_HOST
from workers.egress.dns import DnsConfig
from workers.egress.filter import EgressFilter

NO_ALLOW = EgressPolicy.parse("")


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "127.0.0.2",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not one to bind
        "169.254.169.254",  # metadata (link-local)
        "169.254.170.2",
        "100.64.0.1",  # CGNAT
        "100.100.100.200",  # Alibaba metadata, in CGNAT
        "192.0.0.192",
        "198.18.0.1",  # benchmarking
        "192.0.2.1",  # documentation
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "224.0.0.1",  # multicast
        "239.255.255.250",
        "::",
        "::1",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "fec0::1",  # site-local
        "ff02::1",  # multicast
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",  # IPv4-compatible
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "2002:5db8:d822::1",  # 6to4 of a public address: relays are refused too
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2001:db8::1",  # documentation
        "not an address",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert NO_ALLOW.address_allowed(address, 80) is False


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "1.1.1.1",
        "8.8.8.8",
        "2606:4700:4700::1111",
        "::ffff:93.184.216.34",
        "64:ff9b::5db8:d822",  # NAT64 of a public address (IPv6-only hosts with DNS64)
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert NO_ALLOW.address_allowed(address, 443) is True


def test_the_allowlist_opens_cidrs_addresses_ports_and_names() -> None:
    policy = EgressPolicy.parse(
        "10.1.0.0/16, 127.0.0.1, 192.168.1.5:8080, [fd00::7]:443, 172.16.0.0/12:5432, intranet:443"
    )
    assert policy.address_allowed("10.1.2.3", 1) and not policy.address_allowed("10.2.0.1", 80)
    assert policy.address_allowed("127.0.0.1", 9) and not policy.address_allowed("127.0.0.2", 9)
    assert policy.address_allowed("::ffff:127.0.0.1", 9)  # how the system reaches 127.0.0.1 too
    assert not policy.address_allowed("2002:7f00:1::1", 9)  # 6to4 goes to a relay, not to it
    assert policy.address_allowed("192.168.1.5", 8080) and not policy.address_allowed("192.168.1.5", 80)
    assert policy.address_allowed("fd00::7", 443) and not policy.address_allowed("fd00::7", 80)
    assert policy.address_allowed("172.20.0.1", 5432) and not policy.address_allowed("172.20.0.1", 6379)
    assert policy.host_allowed("INTRANET.", 443) and not policy.host_allowed("intranet", 80)


@pytest.mark.parametrize(
    "entry", ["10.0.0.0/33", "intranet", "host:port", "10.0.0.1:0", "[fd00::1]", "a/b:80"]
)
def test_a_malformed_allowlist_entry_is_an_error(entry: str) -> None:
    with pytest.raises(PolicyError):
        EgressPolicy.parse(entry)


class _Resolver:
    """Answers from a script: each lookup of a name takes its next answer (a rebinding name)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise OSError("no such name")
        return queue.pop(0) if len(queue) > 1 else queue[0]


# No cache: each check is a lookup of its own, which is how a rebinding name is modelled.
NO_CACHE = DnsConfig(timeout=2, cache_seconds=0, negative_seconds=0)


def _filter(answers: dict[str, list[list[str]]], allow: str = "127.0.0.1/32") -> EgressFilter:
    return EgressFilter(EgressPolicy.parse(allow), resolver=_Resolver(answers), dns_config=NO_CACHE)


def _server_connect(egress: EgressFilter, host: str, port: int) -> ServerConnectionHookData:
    server = tflow.tserver_conn()
    server.address = (host, port)
    data = ServerConnectionHookData(server=server, client=tflow.tclient_conn())
    asyncio.run(egress.server_connect(data))
    return data


def test_server_connect_pins_the_connection_to_the_address_it_checked() -> None:
    egress = _filter({"pages.test": [["127.0.0.1"]]})
    data = _server_connect(egress, "pages.test", 8080)
    assert data.server.error is None
    assert data.server.address == ("127.0.0.1", 8080)  # no second lookup when the socket opens


def test_a_name_that_rebinds_to_a_private_address_after_the_first_check_is_refused() -> None:
    # First lookup (the request hook, another client connection: its decision is not reused)
    # says allowed, the one at connect time says 127.0.0.2.
    egress = _filter({"rebind.test": [["127.0.0.1"], ["127.0.0.2"]]})
    flow = tflow.tflow()
    flow.request.host, flow.request.port = "rebind.test", 80
    asyncio.run(egress.request(flow))
    assert flow.response is None  # passed the early check
    data = _server_connect(egress, "rebind.test", 80)
    assert data.server.error is not None and data.server.error.startswith("blocked_address")
    assert data.server.address == ("rebind.test", 80)  # never pointed anywhere


def test_a_name_with_any_private_answer_is_refused() -> None:
    egress = _filter({"mixed.test": [["127.0.0.1", "127.0.0.2"]]})
    assert _server_connect(egress, "mixed.test", 80).server.error is not None


def test_localhost_style_names_are_resolved_and_checked_like_any_name() -> None:
    egress = _filter({"localhost": [["127.0.0.1", "::1"]]})  # ::1 is not on this allowlist
    assert _server_connect(egress, "localhost", 80).server.error is not None


def test_a_plain_http_refusal_is_a_recognisable_403() -> None:
    egress = _filter({})
    flow = tflow.tflow()
    flow.request.host, flow.request.port = "127.0.0.2", 80
    asyncio.run(egress.request(flow))
    assert flow.response is not None and flow.response.status_code == 403
    assert flow.response.headers[BLOCKED_HEADER] == "blocked_address"
    assert b"Blocked by the Browserfleet egress filter" in (flow.response.content or b"")


def test_a_refused_connect_tunnel_gets_a_403_and_an_allowed_one_none() -> None:
    egress = _filter({})
    refused = tflow.tflow()
    refused.request.method, refused.request.host, refused.request.port = "CONNECT", "[::ffff:10.0.0.1]", 443
    asyncio.run(egress.http_connect(refused))
    assert refused.response is not None and refused.response.status_code == 403
    allowed = tflow.tflow()
    allowed.request.method, allowed.request.host, allowed.request.port = "CONNECT", "127.0.0.1", 443
    asyncio.run(egress.http_connect(allowed))
    assert allowed.response is None


def test_the_health_host_is_answered_by_the_filter_itself() -> None:
    egress = _filter({})
    flow = tflow.tflow()
    flow.request.host = HEALTH_HOST
    asyncio.run(egress.request(flow))
    assert flow.response is not None and flow.response.status_code == 200
    assert isinstance(flow.response, http.Response)
    assert egress.resolver.lookups == []  # type: ignore[attr-defined]


def test_chromium_is_pointed_at_the_filter_for_loopback_too() -> None:
    args = chromium_args()
    assert any(arg.startswith("--proxy-server=http://127.0.0.1:") for arg in args)
    assert "--proxy-bypass-list=<-loopback>" in args
    assert "--disable-quic" in args
    assert "--force-webrtc-ip-handling-policy=disable_non_proxied_udp" in args


@pytest.fixture
def no_filter_port() -> Iterator[int]:
    with override_settings(BROWSER_EGRESS_PORT=free_port()):
        from django.conf import settings

        yield settings.BROWSER_EGRESS_PORT


def test_no_browser_starts_when_the_filter_does_not_answer(no_filter_port: int, tmp_path) -> None:
    from workers.browser.local import LocalBackend

    with pytest.raises(BrowserStartError, match=r"egress filter .* does not answer"):
        ensure_ready()
    with pytest.raises(BrowserStartError, match="no browser starts without it"):
        LocalBackend(root=tmp_path).start(session_id="egress-down", display=Display())
    assert browser_processes(str(tmp_path)) == []


# The real filter (mitmproxy) in this process, with a scripted resolver: the socket goes where the
# check said, and a name that rebinds never reaches the private address.


class _Counting(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int]) -> None:
        self.connections = 0
        super().__init__(address, _Hello)

    def get_request(self):  # type: ignore[no-untyped-def]
        self.connections += 1
        return super().get_request()


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def twin_servers() -> Iterator[tuple[_Counting, _Counting]]:
    """An allowed server on 127.0.0.1 and a forbidden one on 127.0.0.2, on the same port."""
    for _ in range(20):
        forbidden = _Counting(("127.0.0.2", 0))
        try:
            allowed = _Counting(("127.0.0.1", forbidden.server_address[1]))
        except OSError:
            forbidden.server_close()
            continue
        break
    else:
        pytest.fail("no port free on both 127.0.0.1 and 127.0.0.2")
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (allowed, forbidden)]
    for thread in threads:
        thread.start()
    yield allowed, forbidden
    for server in (allowed, forbidden):
        server.shutdown()
        server.server_close()


@pytest.fixture
def running_filter(tmp_path) -> Iterator[tuple[int, dict[str, list[list[str]]]]]:
    from workers.egress.__main__ import build_master

    answers: dict[str, list[list[str]]] = {}
    port = free_port()
    loop = asyncio.new_event_loop()
    masters = []

    async def run() -> None:
        # mitmproxy's master wants its event loop running when it is built.
        master = build_master(
            host="127.0.0.1",
            port=port,
            egress_filter=EgressFilter(
                EgressPolicy.parse("127.0.0.1/32"), resolver=_Resolver(answers), dns_config=NO_CACHE
            ),
            confdir=str(tmp_path),
        )
        masters.append(master)
        await master.run()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    wait_until(lambda: _answers(port), timeout=15, message="the in-process filter to listen")
    yield port, answers
    loop.call_soon_threadsafe(masters[0].shutdown)
    thread.join(timeout=10)
    loop.close()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _get_through(port: int, url: str) -> requests.Response:
    proxies = {"http": f"http://127.0.0.1:{port}"}
    return requests.get(url, proxies=proxies, timeout=10)


def test_the_real_filter_connects_to_the_checked_address_and_never_to_a_rebound_one(
    running_filter: tuple[int, dict[str, list[list[str]]]], twin_servers: tuple[_Counting, _Counting]
) -> None:
    port, answers = running_filter
    allowed, forbidden = twin_servers
    target_port = allowed.server_address[1]
    # A name the system cannot resolve: it loads only because the filter connects to the address
    # its own lookup checked.
    answers["pages.test"] = [["127.0.0.1"]]
    assert _get_through(port, f"http://pages.test:{target_port}/").text == "hello"
    assert allowed.connections == 1

    # 127.0.0.1 at the request's check, 127.0.0.2 at any later lookup: the connection goes to
    # the address that check chose (one lookup per request), the next request is refused.
    answers["rebind.test"] = [["127.0.0.1"], ["127.0.0.2"]]
    assert _get_through(port, f"http://rebind.test:{target_port}/").text == "hello"
    refused = _get_through(port, f"http://rebind.test:{target_port}/")
    assert refused.status_code == 403 and refused.headers[BLOCKED_HEADER] == "blocked_address"
    # Straight to the private address: the 403 page, and still nothing reached it.
    blocked = _get_through(port, f"http://127.0.0.2:{target_port}/")
    assert blocked.status_code == 403 and blocked.headers[BLOCKED_HEADER] == "blocked_address"
    assert forbidden.connections == 0
    assert allowed.connections == 2
