"""Which network addresses a tenant's browser may reach: the one place that decides.

Both checks use it: the navigation check on the first request (sessions/url_policy.py, which adds
the URL parsing) and the egress filter on every connection (workers/egress). One rule:

  An address is allowed when an entry of BROWSER_EGRESS_ALLOW lists it, or when it is plain
  global unicast (`is_forbidden` says no), or, with ALLOW_PRIVATE_NETWORK_TARGETS (development),
  when it is anything but a cloud metadata address.

Refused (`is_forbidden`): everything `ipaddress` does not call global (private, loopback,
link-local, shared/CGNAT, reserved, documentation, benchmarking, unspecified...), a few ranges
some Python versions call global (6to4 relay anycast, IPv6 site-local, local-use NAT64, the IETF
protocol block), multicast, the cloud metadata addresses, 6to4 and Teredo (tunnels through
relays), and IPv6 addresses that carry a refused IPv4 address inside (IPv4-mapped,
IPv4-compatible, NAT64): a private IPv4 address written in IPv6 is still a private address.

`BROWSER_EGRESS_ALLOW` is a comma-separated list of entries, each one of:
  - a CIDR or a single address (`10.1.0.0/16`, `127.0.0.1`, `fd00::/8`): any port;
  - an address or CIDR with a port (`10.1.2.3:8080`, `[fd00::1]:443`, `10.0.0.0/8:443`);
  - a host name with a port (`intranet.example:443`): that name on that port, whatever it
    resolves to (the operator vouches for the name).
A metadata address is opened only by an entry for exactly that address (or a name entry), never
by a range that happens to contain it. Empty by default everywhere; development reaches private
addresses through ALLOW_PRIVATE_NETWORK_TARGETS (true outside production), tests list 127.0.0.1.
A malformed entry is an error at start-up, never ignored.

This module reads only the environment (no Django): the egress filter process imports it; the
web and workers get the same values through settings.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Metadata services answer on addresses that the ranges below already refuse (link-local,
# CGNAT, ULA, 192.0.0.0/24); named here so that no allowlist range opens them by accident.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, DigitalOcean, OpenStack
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
        "fd00:ec2::254",  # AWS over IPv6
    )
)

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Not global, though some Python versions' `is_global` says otherwise.
_NOT_GLOBAL = tuple(
    ipaddress.ip_network(net)
    for net in (
        "192.0.0.0/24",  # IETF protocol assignments
        "192.88.99.0/24",  # 6to4 relay anycast
        "198.18.0.0/15",  # benchmarking
        "fec0::/10",  # site-local
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo among them)
        "64:ff9b:1::/48",  # local-use NAT64
    )
)


class PolicyError(ValueError):
    """A malformed BROWSER_EGRESS_ALLOW entry."""


def parse_address(raw: str) -> IPAddress:
    # A scope id (fe80::1%eth0) names an interface, not another address.
    return ipaddress.ip_address(raw.split("%", 1)[0])


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # (server, client): the client is where traffic goes
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_metadata(address: IPAddress) -> bool:
    """A cloud metadata address, in any spelling (IPv4-mapped, NAT64...)."""
    return address in METADATA_ADDRESSES or embedded_ipv4(address) in METADATA_ADDRESSES


def refusal_reason(address: IPAddress) -> str | None:
    """Why a browser may not connect to `address` before any allowlist; None for plain global
    unicast. Every refusal names "private" or "metadata" (tenants read it in error messages)."""
    if is_metadata(address):
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            # The system connects to the IPv4 address itself. Decided here rather than by the
            # IPv6 address's is_global, whose answer for mapped addresses changed across
            # Python releases.
            inner_reason = refusal_reason(address.ipv4_mapped)
            return None if inner_reason is None else f"an IPv4-mapped form of {inner_reason}"
        if address.sixtofour is not None or address.teredo is not None:
            # Tunnels through relays: nothing a browser needs, and they hide where traffic goes.
            return "a 6to4 or Teredo tunnel address, refused like private addresses"
        inner = embedded_ipv4(address)
        if inner is not None:
            inner_reason = refusal_reason(inner)
            if inner_reason is not None:
                return f"an IPv6 address that carries {inner}, {inner_reason}"
    if address.is_multicast:
        return "a multicast address, refused like private addresses"
    if not address.is_global or any(address in net for net in _NOT_GLOBAL if net.version == address.version):
        return "a private, loopback, link-local or reserved address"
    return None


def is_forbidden(address: IPAddress) -> bool:
    """True for any address that is not plain global unicast (before the allowlist)."""
    return refusal_reason(address) is not None


@dataclass(frozen=True)
class AllowEntry:
    network: IPNetwork | None = None
    host: str | None = None  # a lower-case host name, when the entry names one
    port: int | None = None  # None: any port

    def lists(self, address: IPAddress, port: int) -> bool:
        if self.network is None or self.port not in (None, port):
            return False
        if address.version != self.network.version or address not in self.network:
            return False
        # A range never opens the metadata service by accident: only an entry for exactly it.
        return not is_metadata(address) or self.network.num_addresses == 1

    def names(self, host: str, port: int) -> bool:
        return self.host is not None and self.port == port and host.lower().rstrip(".") == self.host


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise PolicyError(f"BROWSER_EGRESS_ALLOW entry {entry!r}: the port must be 1-65535.")
    return int(text)


def parse_entry(entry: str) -> AllowEntry:
    entry = entry.strip()
    try:
        return AllowEntry(network=ipaddress.ip_network(entry, strict=False))
    except ValueError:
        pass
    if entry.startswith("["):
        address, sep, port = entry[1:].partition("]:")
        if not sep:
            raise PolicyError(f"BROWSER_EGRESS_ALLOW entry {entry!r}: write [v6-address]:port.")
        try:
            return AllowEntry(network=ipaddress.ip_network(address, strict=False), port=_port(port, entry))
        except ValueError as exc:
            raise PolicyError(f"BROWSER_EGRESS_ALLOW entry {entry!r}: {exc}") from None
    host, sep, port = entry.rpartition(":")
    if not sep or not host or ":" in host:
        raise PolicyError(
            f"BROWSER_EGRESS_ALLOW entry {entry!r} is neither a CIDR, an address nor host:port."
        )
    try:
        return AllowEntry(network=ipaddress.ip_network(host, strict=False), port=_port(port, entry))
    except PolicyError:
        raise
    except ValueError:
        pass
    name = host.lower().rstrip(".")
    if not all(part and all(c.isalnum() or c == "-" for c in part) for part in name.split(".")):
        raise PolicyError(f"BROWSER_EGRESS_ALLOW entry {entry!r}: {host!r} is not a host name.")
    return AllowEntry(host=name, port=_port(port, entry))


def parse_egress_allow(entries: Iterable[str]) -> tuple[AllowEntry, ...]:
    """The entries of BROWSER_EGRESS_ALLOW (already split on commas); PolicyError if malformed."""
    return tuple(parse_entry(entry) for entry in entries if entry.strip())


@dataclass(frozen=True)
class EgressPolicy:
    entries: tuple[AllowEntry, ...] = ()
    allow_private: bool = False  # ALLOW_PRIVATE_NETWORK_TARGETS

    @classmethod
    def parse(cls, raw: str, *, allow_private: bool = False) -> EgressPolicy:
        return cls(entries=parse_egress_allow(raw.split(",")), allow_private=allow_private)

    def _listed(self, address: IPAddress, port: int) -> bool:
        return any(entry.lists(address, port) for entry in self.entries)

    def address_allowed(self, ip: str | IPAddress, port: int) -> bool:
        """May a browser open a connection to `ip`:`port`?"""
        try:
            address = parse_address(ip) if isinstance(ip, str) else ip
        except ValueError:
            return False
        if self._listed(address, port):
            return True
        # ::ffff:a.b.c.d is how the system reaches a.b.c.d; the other embeddings go elsewhere.
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None and self._listed(mapped, port):
            return True
        if self.allow_private:
            return not is_metadata(address)
        return not is_forbidden(address)

    def host_allowed(self, host: str, port: int) -> bool:
        """Is this host name on this port allowed whatever it resolves to?"""
        return any(entry.names(host, port) for entry in self.entries)


def allow_private_from_env() -> bool:
    """ALLOW_PRIVATE_NETWORK_TARGETS as settings reads it: true outside production by default."""
    raw = os.environ.get("ALLOW_PRIVATE_NETWORK_TARGETS", "").strip().lower()
    if not raw:
        return os.environ.get("BROWSERFLEET_ENV", "production") != "production"
    return raw in {"1", "true", "yes", "on"}


@lru_cache(maxsize=1)
def policy() -> EgressPolicy:
    """The policy from the environment (read once per process)."""
    return EgressPolicy.parse(
        os.environ.get("BROWSER_EGRESS_ALLOW", ""), allow_private=allow_private_from_env()
    )


def address_allowed(ip: str | IPAddress, port: int) -> bool:
    """May a browser connect to `ip`:`port` under this process's BROWSER_EGRESS_ALLOW?"""
    return policy().address_allowed(ip, port)


def host_allowed(host: str, port: int) -> bool:
    return policy().host_allowed(host, port)
