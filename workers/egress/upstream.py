"""Chaining to an upstream proxy, chosen per connection (issue 24's foundation).

A browser whose route names an upstream proxy (an operator pool's or a tenant's own) still goes
through the filter: the filter checks the target as always (a private literal, or a name that
resolves privately from here, is refused), checks the proxy's own address the same way (a
tenant cannot name an internal host as its proxy), then opens the tunnel itself: a TCP
connection to the checked proxy address, `CONNECT target:port` (with Proxy-Authorization when
the rule has credentials), and on a 2xx answer hands mitmproxy a one-shot loopback splice to
that tunnel in place of the target's address. mitmproxy then carries the browser's bytes
exactly as for a direct connection (TLS still never decrypted; plain HTTP goes through the
tunnel too, in origin form), so every other rule of the filter holds unchanged.

Rules are tried in order; the first whose `pattern` matches the target host wins; a rule with
no pattern matches every host; `upstream=None` is "direct". Credentials never appear in an
error text, a log line or a repr.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import ipaddress
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from workers.egress.clients import socket_owner

# A proxy that has not answered the CONNECT in this long is a failed connection.
CONNECT_TIMEOUT_SECONDS = 10.0
# mitmproxy connects to the splice right after server_connect; a splice nobody takes is closed.
SPLICE_ACCEPT_SECONDS = 10.0
_MAX_REPLY_HEAD = 16 * 1024
_pending: set[asyncio.Future[None]] = set()


class ProxyFailed(Exception):
    """The upstream proxy could not be reached or refused the tunnel (text safe to show).
    `down`: it did not answer at all (a pool takes it out of rotation for a while)."""

    def __init__(self, message: str, *, down: bool = False) -> None:
        super().__init__(message)
        self.down = down


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    name: str = ""  # an operator pool entry's label, for logs and metering
    scheme: str = "http"  # or "socks5" (names are sent to it unresolved, as to an HTTP proxy)
    # Pool members to use, in this order, while this one is out of rotation (PoolHealth).
    fallbacks: tuple[Upstream, ...] = ()
    meter: str = ""  # the session its bytes are reported under (metering.py); "": not metered
    # Where its failures are reported (metering.py `proxy_errors_key`), so that a job browser's
    # runner tells a proxy's failure from the target's; "": not reported.
    report: str = ""

    @classmethod
    def parse(
        cls, url: str, *, username: str = "", password: str = "", name: str = "", meter: str = ""
    ) -> Upstream:
        """`http://` or `socks5://[user:pass@]host:port`; ValueError (without the credentials)
        otherwise."""
        parts = urlsplit(url.strip())
        schemes = {"http": 80, "socks5": 1080}
        if parts.scheme not in schemes or not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError("a proxy is http://host:port or socks5://host:port")
        try:
            port = parts.port or schemes[parts.scheme]
        except ValueError:
            raise ValueError("a proxy's port is a number from 1 to 65535") from None
        return cls(
            host=parts.hostname,
            port=port,
            username=username or unquote(parts.username or ""),
            password=password or unquote(parts.password or ""),
            name=name or f"{parts.hostname}:{port}",
            meter=meter,
            scheme=parts.scheme,
        )

    def authorization(self) -> str | None:
        if not self.username and not self.password:
            return None
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


@dataclass(frozen=True)
class Rule:
    upstream: Upstream | None  # None: direct
    pattern: str = ""  # fnmatch on the host (`*.example.com`); empty: every host

    def matches(self, host: str) -> bool:
        if not self.pattern:
            return True
        name = host.lower().rstrip(".")
        pattern = self.pattern.lower().rstrip(".")
        return fnmatch.fnmatchcase(name, pattern) or (
            pattern.startswith("*.") and name == pattern[2:]  # *.example.com covers example.com
        )


# A pool member that did not answer is skipped this long; then the next connection tries it again.
POOL_RETRY_SECONDS = 30.0


class PoolHealth:
    """Which upstreams are out of rotation: one that could not be reached (or did not answer the
    CONNECT) is skipped for POOL_RETRY_SECONDS by every browser whose rule lists a fallback; the
    session's own member stays first in its order, so it comes back to it once it answers."""

    def __init__(self, retry_seconds: float = POOL_RETRY_SECONDS) -> None:
        self.retry_seconds = retry_seconds
        self._down_until: dict[tuple[str, int], float] = {}
        # Members the active probe (pool_probe.py, shared by every filter process) found dead.
        self._probed_down: frozenset[str] = frozenset()

    def candidates(self, upstream: Upstream) -> list[Upstream]:
        """`upstream` and its fallbacks, those in rotation first (all of them if none is)."""
        members = [upstream, *upstream.fallbacks]
        now = time.monotonic()
        up = [
            m
            for m in members
            if self._down_until.get((m.host, m.port), 0.0) <= now
            and f"{m.host}:{m.port}" not in self._probed_down
        ]
        return up + [m for m in members if m not in up]

    def shared(self, *, down: set[str], up: set[str]) -> None:
        """What the probes saw (`host:port`): the down ones are out of rotation until a probe finds
        them answering; an answering one is back at once, whatever a failed connection said."""
        self._probed_down = frozenset(down)
        for key in up:
            host, _, port = key.rpartition(":")
            self._down_until.pop((host, int(port)), None)

    def down(self, upstream: Upstream) -> None:
        self._down_until[(upstream.host, upstream.port)] = time.monotonic() + self.retry_seconds

    def up(self, upstream: Upstream) -> None:
        self._down_until.pop((upstream.host, upstream.port), None)


def choose(rules: list[Rule], host: str) -> Upstream | None:
    """The upstream for `host`: the first matching rule's; None (direct) when none matches."""
    for rule in rules:
        if rule.matches(host):
            return rule.upstream
    return None


async def open_tunnel(
    upstream: Upstream, address: str, target: tuple[str, int], *, timeout: float = CONNECT_TIMEOUT_SECONDS
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A CONNECT tunnel to `target` through `upstream`, reached at the checked `address`."""
    host, port = target
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, upstream.port), timeout)
    except (OSError, TimeoutError):
        raise ProxyFailed(f"the proxy {upstream.name} cannot be reached", down=True) from None
    if upstream.scheme == "socks5":
        try:
            await asyncio.wait_for(_socks5_connect(reader, writer, upstream, target), timeout)
        except ProxyFailed:
            writer.close()
            raise
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            writer.close()
            raise ProxyFailed(f"the proxy {upstream.name} did not open the tunnel", down=True) from None
        return reader, writer
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    credentials = upstream.authorization()
    if credentials:
        lines.append(f"Proxy-Authorization: {credentials}")
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        writer.close()
        raise ProxyFailed(f"the proxy {upstream.name} did not open the tunnel", down=True) from None
    status_line = head[:_MAX_REPLY_HEAD].split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if not 200 <= status < 300:
        writer.close()
        raise ProxyFailed(f"the proxy {upstream.name} answered {status or 'garbage'}")
    return reader, writer


async def _socks5_connect(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: Upstream, target: tuple[str, int]
) -> None:
    """RFC 1928 CONNECT (the name unresolved, as for an HTTP proxy), with RFC 1929
    username/password when the rule has credentials."""
    host, port = target
    credentials = bool(upstream.username or upstream.password)
    writer.write(b"\x05\x02\x00\x02" if credentials else b"\x05\x01\x00")
    await writer.drain()
    version, method = await reader.readexactly(2)
    if version != 5 or method not in (0, 2) or (method == 2 and not credentials):
        raise ProxyFailed(f"the proxy {upstream.name} refused our authentication methods")
    if method == 2:
        user, password = upstream.username.encode()[:255], upstream.password.encode()[:255]
        writer.write(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
        await writer.drain()
        if (await reader.readexactly(2))[1] != 0:
            raise ProxyFailed(f"the proxy {upstream.name} refused the credentials")
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        address = (b"\x01" if literal.version == 4 else b"\x04") + literal.packed
    except ValueError:
        name = host.encode("idna")[:255]
        address = b"\x03" + bytes([len(name)]) + name
    writer.write(b"\x05\x01\x00" + address + port.to_bytes(2, "big"))
    await writer.drain()
    _, status, _, kind = await reader.readexactly(4)
    if status != 0:
        raise ProxyFailed(f"the proxy {upstream.name} answered SOCKS status {status}")
    bound = {1: 4, 4: 16}.get(kind)
    await reader.readexactly((bound if bound is not None else (await reader.readexactly(1))[0]) + 2)


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: Callable[[int], None]
) -> None:
    try:
        while chunk := await reader.read(65536):
            count(len(chunk))
            writer.write(chunk)
            await writer.drain()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


def _uncounted(size: int) -> None:
    pass


def _nothing() -> None:
    pass


async def splice(
    tunnel: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    *,
    count: Callable[[int], None] = _uncounted,
    closed: Callable[[], None] = _nothing,
) -> int:
    """A loopback port whose first connection, from this process's uid, is joined to `tunnel`.

    Only a connection from this process's own uid is taken (the sandbox uids cannot even reach
    it past the firewall); the listener closes after that one, or after SPLICE_ACCEPT_SECONDS.
    `count` gets the size of every chunk carried, both ways (metering); `closed` is called once
    when the splice is done (both ways closed, or never taken).
    """
    up_reader, up_writer = tunnel
    taken = asyncio.Event()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer, ours = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
        owner = socket_owner(peer[0], peer[1], peer=(ours[0], ours[1]))
        # Refused when the kernel names another uid; a peer it cannot find (gone already, or
        # missed) is taken: only this process learnt the port, a moment ago.
        if taken.is_set() or (owner is not None and owner != os.geteuid()):
            writer.close()
            return
        taken.set()
        server.close()
        try:
            await asyncio.gather(_pipe(reader, up_writer, count), _pipe(up_reader, writer, count))
        finally:
            closed()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])

    async def expire() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(taken.wait(), SPLICE_ACCEPT_SECONDS)
        if not taken.is_set():
            server.close()
            up_writer.close()
            closed()

    # Held until done: the event loop keeps only weak references to tasks.
    _pending.add(task := asyncio.ensure_future(expire()))
    task.add_done_callback(_pending.discard)
    return port
