"""The egress filter's DNS (issue 19 item 7): one page cannot stall everyone's lookups.

No real nameserver is ever asked about a made-up name: the filter's hooks run with a scripted
lookup, and the resolver that asks nameservers (DnsLookup) is pointed at a fake nameserver of
this test's own on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from mitmproxy import http
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import tflow

from project.netpolicy import EgressPolicy
from tests.support.processes import wait_until
from workers.egress.clients import client_key, socket_owner
from workers.egress.dns import CachingResolver, DnsConfig, DnsLookup, LookupFailed, read_hosts
from workers.egress.filter import EgressFilter

POLICY = EgressPolicy.parse("127.0.0.1/32")


class _Scripted:
    """A lookup hook: names in `answers` answer at once; `stall*` names never answer."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if host.startswith("stall"):
                await asyncio.Event().wait()  # a nameserver that never answers
            if host not in self.answers:
                raise OSError("no such name")
            return self.answers[host]
        finally:
            self.in_flight -= 1


def _connect_flow(host: str, port: int, peer: tuple[str, int]) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.request.method, flow.request.host, flow.request.port = "CONNECT", host, port
    flow.client_conn.peername = peer
    return flow


def test_a_connect_is_one_lookup_not_two() -> None:
    lookup = _Scripted({"pages.test": ["127.0.0.1"]})
    egress = EgressFilter(POLICY, resolver=lookup)
    flow = _connect_flow("pages.test", 443, ("10.9.9.1", 1000))
    server = tflow.tserver_conn()
    server.address = ("pages.test", 443)

    async def connect() -> ServerConnectionHookData:
        await egress.http_connect(flow)
        data = ServerConnectionHookData(server=server, client=flow.client_conn)
        await egress.server_connect(data)
        return data

    data = asyncio.run(connect())
    assert flow.response is None and data.server.error is None
    assert data.server.address == ("127.0.0.1", 443)
    assert lookup.calls == ["pages.test"]


def test_a_name_that_never_answers_is_refused_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGRESS_DNS_TIMEOUT_SECONDS", "1")
    egress = EgressFilter(POLICY, resolver=_Scripted({}))
    flow = _connect_flow("stall.test", 443, ("10.9.9.1", 1000))

    async def connect() -> None:
        await asyncio.wait_for(egress.http_connect(flow), 4)

    asyncio.run(connect())
    assert flow.response is not None and flow.response.status_code == 403
    assert b"in time" in (flow.response.content or b"")


def test_one_browser_stalling_many_names_neither_exceeds_its_limit_nor_slows_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EGRESS_DNS_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("EGRESS_DNS_PER_CLIENT", "3")
    lookup = _Scripted({"pages.test": ["127.0.0.1"]})
    egress = EgressFilter(POLICY, resolver=lookup)
    stalling = [_connect_flow(f"stall{i}.test", 443, ("10.9.9.1", 1000 + i)) for i in range(40)]
    other = _connect_flow("pages.test", 443, ("10.9.9.2", 1000))

    async def run() -> float:
        hogs = [asyncio.ensure_future(egress.http_connect(flow)) for flow in stalling]
        await asyncio.sleep(0.05)  # the hog's lookups are all asked for
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(egress.http_connect(other), 1)
        took = asyncio.get_running_loop().time() - started
        await asyncio.wait_for(asyncio.gather(*hogs), 10)
        return took

    took = asyncio.run(run())
    assert other.response is None and took < 0.5
    # The hog never had more than its 3 lookups in flight (old code: all 40, without end).
    assert lookup.most_in_flight <= 3 + 1  # its 3, plus the other browser's one
    assert all(flow.response is not None and flow.response.status_code == 403 for flow in stalling)


def test_answers_and_failures_are_cached_and_shared() -> None:
    async def run() -> tuple[_Scripted, CachingResolver]:
        lookup = _Scripted({"pages.test": ["127.0.0.1"]})
        resolver = CachingResolver(lookup, DnsConfig(timeout=1, cache_seconds=60, negative_seconds=60))
        # Ten clients ask at once: one query.
        answers = await asyncio.gather(
            *(resolver.resolve("pages.test", 80, client=str(i)) for i in range(10))
        )
        assert all(answer == ["127.0.0.1"] for answer in answers)
        assert await resolver.resolve("PAGES.test.", 443) == ["127.0.0.1"]
        for _ in range(3):
            with pytest.raises(LookupFailed):
                await resolver.resolve("missing.test", 80)
        return lookup, resolver

    lookup, resolver = asyncio.run(run())
    assert lookup.calls == ["pages.test", "missing.test"]
    assert resolver.lookups == 2


def test_a_cached_answer_expires() -> None:
    async def run() -> list[str]:
        lookup = _Scripted({"pages.test": ["127.0.0.1"]})
        resolver = CachingResolver(lookup, DnsConfig(timeout=1, cache_seconds=0, negative_seconds=0))
        await resolver.resolve("pages.test", 80)
        await resolver.resolve("pages.test", 80)
        return lookup.calls

    assert asyncio.run(run()) == ["pages.test", "pages.test"]


# DnsLookup against a fake nameserver on loopback ----------------------------------------------


class _FakeNameserver:
    """UDP on 127.0.0.1: `pages.test` has A 127.0.0.1, `stall.test` never gets an answer,
    anything else is NXDOMAIN."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.questions: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(wire)
            question = query.question[0]
            name = question.name.to_text()
            self.questions.append(f"{name} {dns.rdatatype.to_text(question.rdtype)}")
            if name == "stall.test.":
                continue
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.RA
            if name == "pages.test.":
                if question.rdtype == dns.rdatatype.A:
                    reply.answer.append(dns.rrset.from_text(name, 30, "IN", "A", "127.0.0.1"))
            else:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def nameserver() -> Iterator[_FakeNameserver]:
    server = _FakeNameserver()
    yield server
    server.close()


def test_the_nameserver_lookup_answers_fails_and_times_out(nameserver: _FakeNameserver) -> None:
    config = DnsConfig(timeout=1, nameservers=(("127.0.0.1", nameserver.port),))
    lookup = DnsLookup(config, hosts={"localhost": ["127.0.0.1", "::1"]})

    async def run() -> None:
        assert await lookup("pages.test", 80) == ["127.0.0.1"]
        assert await lookup("localhost", 80) == ["127.0.0.1", "::1"]  # /etc/hosts, no query
        with pytest.raises(LookupFailed):
            await lookup("missing.test", 80)
        started = asyncio.get_running_loop().time()
        with pytest.raises(LookupFailed, match="in time"):
            await lookup("stall.test", 80)
        assert asyncio.get_running_loop().time() - started < 3

    asyncio.run(run())
    assert "pages.test. A" in nameserver.questions and "pages.test. AAAA" in nameserver.questions
    assert not any(q.startswith("localhost") for q in nameserver.questions)


def test_the_hosts_file_is_read(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost me.local\n::1 localhost # v6\nbad line\n10.0.0.5 db\n")
    assert read_hosts(hosts) == {
        "localhost": ["127.0.0.1", "::1"],
        "me.local": ["127.0.0.1"],
        "db": ["10.0.0.5"],
    }


def test_a_loopback_client_is_known_by_the_uid_that_owns_its_socket() -> None:
    import os

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as client:
            peer = client.getsockname()
            assert socket_owner(peer[0], peer[1]) == os.geteuid()
            assert client_key(peer) == f"uid:{os.geteuid()}"
    assert client_key(("10.9.9.1", 5)) == "10.9.9.1"


_HOLD_AS = """
import socket, sys, time
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.connect(("127.0.0.1", int(sys.argv[2])))
print("connected", flush=True)
time.sleep(30)
"""


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="running as another uid needs root")
@pytest.mark.parametrize("lookup", ["netlink", "proc"])
def test_a_connection_is_known_by_its_own_socket_when_its_local_port_is_in_another(
    lookup: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One local port may be in several connections at once (to different peers, or an earlier
    one in TIME_WAIT, which reads as root's): the owner is that of the socket whose other end is
    ours, never the first listed with that port. A sandbox browser taken for root goes direct.
    Both ways of asking the kernel: sock_diag over netlink, and the socket tables in /proc (where
    netlink is refused)."""
    import os
    import subprocess

    from workers.egress import clients

    monkeypatch.setattr(clients, "_diag_usable", lookup == "netlink")
    if lookup == "proc":
        monkeypatch.setattr(clients, "_diag_owner", None)  # never called

    uid = 249_998  # a sandbox uid (the top of the default range, where leases come last)
    with socket.socket() as ours, socket.socket() as other, socket.socket() as roots:
        for listener in (ours, other):
            listener.bind(("127.0.0.1", 0))
            listener.listen()
        roots.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        roots.bind(("127.0.0.1", 0))
        port = roots.getsockname()[1]
        roots.connect(other.getsockname())  # root's connection from `port` to another server
        held = subprocess.Popen(
            ["/usr/bin/python3", "-c", _HOLD_AS, str(port), str(ours.getsockname()[1])],
            user=uid,
            group=uid,
            extra_groups=[],
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert held.stdout is not None and held.stdout.readline().strip() == "connected"
            assert socket_owner("127.0.0.1", port, peer=ours.getsockname()) == uid
            assert socket_owner("127.0.0.1", port, peer=other.getsockname()) == os.geteuid()
            assert client_key(("127.0.0.1", port), ours.getsockname()) == f"uid:{uid}"
        finally:
            held.kill()
            held.wait()
    # The end of a connection closed first waits in TIME_WAIT: nobody's, not root's.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as gone:
            end = gone.getsockname()
            accepted, _ = server.accept()
        accepted.close()
        wait_until(
            lambda: socket_owner(end[0], end[1], peer=server.getsockname()) is None,
            timeout=5,
            message="the closed connection to be nobody's",
        )
