"""The egress filter's name resolution: asynchronous, bounded in time and per client, cached.

One page must not be able to stall the filter's lookups for everyone (issue 19 item 7). Before,
every check called `getaddrinfo` on asyncio's default executor (a handful of threads, no cache,
no limit), twice per CONNECT: a page asking for a few hundred names that never answer held every
thread for the system resolver's whole timeout, and every other browser's lookups queued behind.

Now:
  - `DnsLookup` asks the nameservers itself (dnspython's asyncio resolver, A and AAAA at once):
    a lookup is a UDP exchange on the event loop, never a thread, and it ends at
    EGRESS_DNS_TIMEOUT_SECONDS whatever the nameserver does. Names in /etc/hosts (localhost, a
    container's own name) are answered from that file first, as getaddrinfo would.
  - `CachingResolver` sits in front of any lookup: answers are kept EGRESS_DNS_CACHE_SECONDS,
    failures (no such name, no answer in time) EGRESS_DNS_NEGATIVE_SECONDS; concurrent lookups of
    one name share one query; and one client (a browser: the peer's address, and on a local
    host the uid that owns the peer's socket, workers/egress/clients.py) has at most
    EGRESS_DNS_PER_CLIENT lookups of its own in flight. A client over its limit waits, at most
    the timeout, and then gets `unresolvable`; other clients never wait for it.

The answer that was checked is the one the connection goes to (filter.py pins it), so a cached
answer is never a rebinding risk: whatever the name resolves to later, the socket opens to the
checked address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.resolver

from project.env import env_int, env_list

# The raw lookup: every address a name has, in order of preference; OSError when it has none.
Lookup = Callable[[str, int], Awaitable[list[str]]]


class LookupFailed(OSError):
    """A name that does not resolve, or not in time, or a client over its limit."""


@dataclass(frozen=True)
class DnsConfig:
    timeout: float = 5.0
    cache_seconds: float = 30.0
    negative_seconds: float = 10.0
    per_client: int = 8
    cache_size: int = 10_000
    # host:port pairs; empty: the system's (/etc/resolv.conf)
    nameservers: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls) -> DnsConfig:
        """The EGRESS_DNS_* variables (documented in docs/configuration.md, .env.example)."""
        return cls(
            timeout=float(env_int("EGRESS_DNS_TIMEOUT_SECONDS", 5, minimum=1)),
            cache_seconds=float(env_int("EGRESS_DNS_CACHE_SECONDS", 30, minimum=0)),
            negative_seconds=float(env_int("EGRESS_DNS_NEGATIVE_SECONDS", 10, minimum=0)),
            per_client=env_int("EGRESS_DNS_PER_CLIENT", 8, minimum=1),
            nameservers=tuple(parse_nameserver(item) for item in env_list("EGRESS_DNS_NAMESERVERS", [])),
        )


def parse_nameserver(raw: str) -> tuple[str, int]:
    """`1.1.1.1`, `127.0.0.1:5353`, `[::1]:53` -> (address, port)."""
    text = raw.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)  # ValueError for a name: a nameserver is an address
    return host, port


def read_hosts(path: Path = Path("/etc/hosts")) -> dict[str, list[str]]:
    hosts: dict[str, list[str]] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return hosts
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            address = str(ipaddress.ip_address(fields[0].split("%", 1)[0]))
        except ValueError:
            continue
        for name in fields[1:]:
            addresses = hosts.setdefault(name.lower().rstrip("."), [])
            if address not in addresses:
                addresses.append(address)
    return hosts


class DnsLookup:
    """Asks the nameservers directly, on the event loop (no thread), within `timeout`."""

    def __init__(self, config: DnsConfig, *, hosts: dict[str, list[str]] | None = None) -> None:
        self.hosts = read_hosts() if hosts is None else hosts
        try:
            self.resolver = dns.asyncresolver.Resolver(configure=not config.nameservers)
        except dns.resolver.NoResolverConfiguration:
            # No /etc/resolv.conf nameserver: only /etc/hosts answers (every other name fails).
            self.resolver = dns.asyncresolver.Resolver(configure=False)
        if config.nameservers:
            # One port for all (dnspython's resolver-wide port); tests use one fake nameserver.
            self.resolver.nameservers = [host for host, _ in config.nameservers]
            self.resolver.port = config.nameservers[0][1]
        self.resolver.timeout = config.timeout
        self.resolver.lifetime = config.timeout

    async def __call__(self, host: str, port: int) -> list[str]:
        name = host.lower().rstrip(".")
        if name in self.hosts:
            return list(self.hosts[name])
        answers = await asyncio.gather(self._query(name, "AAAA"), self._query(name, "A"))
        # IPv4 first, as the system resolver orders them on most hosts.
        addresses = [*answers[1], *answers[0]]
        if not addresses:
            raise LookupFailed(f"{host} has no address")
        return addresses

    async def _query(self, name: str, rdtype: str) -> list[str]:
        try:
            answer = await self.resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout:
            raise LookupFailed(f"{name}: no answer in time") from None
        except dns.resolver.NoNameservers:
            raise LookupFailed(f"{name}: no nameserver answered") from None
        except dns.exception.DNSException as exc:
            raise LookupFailed(f"{name}: {type(exc).__name__}") from None
        return [rdata.to_text() for rdata in answer]


class CachingResolver:
    """Cache, single flight, per-client limit and deadline around a `Lookup` (see the module)."""

    def __init__(self, lookup: Lookup, config: DnsConfig | None = None) -> None:
        self.lookup = lookup
        self.config = config or DnsConfig()
        # name -> (expires at, addresses, or the failure's text)
        self._cache: OrderedDict[str, tuple[float, list[str] | str]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[list[str]]] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._waiting: dict[str, int] = {}
        self.lookups = 0  # lookups that reached `lookup` (cache misses), for tests and the bench

    async def resolve(self, host: str, port: int, *, client: str = "") -> list[str]:
        name = host.lower().rstrip(".")
        cached = self._cached(name)
        if cached is not None:
            return self._answer(cached)
        async with self._slot(client):
            cached = self._cached(name)  # filled while this client waited for its slot
            if cached is not None:
                return self._answer(cached)
            task = self._inflight.get(name)
            if task is None:
                task = asyncio.ensure_future(self._lookup(name, port))
                self._inflight[name] = task
                task.add_done_callback(lambda _: self._inflight.pop(name, None))
            # Shielded: a browser that hangs up does not cancel the lookup others wait for.
            return self._answer(await asyncio.shield(task))

    async def _lookup(self, name: str, port: int) -> list[str]:
        self.lookups += 1
        try:
            addresses = await asyncio.wait_for(self.lookup(name, port), self.config.timeout)
        except TimeoutError:
            self._store(name, f"{name} did not resolve in time", self.config.negative_seconds)
            raise LookupFailed(f"{name} did not resolve in time") from None
        except (OSError, UnicodeError, ValueError) as exc:
            self._store(name, f"{name} does not resolve: {exc}", self.config.negative_seconds)
            raise LookupFailed(f"{name} does not resolve: {exc}") from None
        if not addresses:
            self._store(name, f"{name} does not resolve", self.config.negative_seconds)
            raise LookupFailed(f"{name} does not resolve")
        self._store(name, list(addresses), self.config.cache_seconds)
        return list(addresses)

    def _cached(self, name: str) -> list[str] | str | None:
        entry = self._cache.get(name)
        if entry is None:
            return None
        expires, value = entry
        if expires <= time.monotonic():
            del self._cache[name]
            return None
        self._cache.move_to_end(name)
        return value

    def _store(self, name: str, value: list[str] | str, seconds: float) -> None:
        if seconds <= 0:
            return
        self._cache[name] = (time.monotonic() + seconds, value)
        self._cache.move_to_end(name)
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)

    @staticmethod
    def _answer(value: list[str] | str) -> list[str]:
        if isinstance(value, str):
            raise LookupFailed(value)
        return list(value)

    @contextlib.asynccontextmanager
    async def _slot(self, client: str) -> AsyncIterator[None]:
        semaphore = self._slots.setdefault(client, asyncio.Semaphore(self.config.per_client))
        self._waiting[client] = self._waiting.get(client, 0) + 1
        try:
            try:
                await asyncio.wait_for(semaphore.acquire(), self.config.timeout)
            except TimeoutError:
                raise LookupFailed("too many lookups at once from this browser") from None
            try:
                yield
            finally:
                semaphore.release()
        finally:
            self._waiting[client] -= 1
            if not self._waiting[client]:
                del self._waiting[client]
                del self._slots[client]
