"""Which network addresses a tenant's browser may reach: the one place that decides.

Only global unicast addresses are allowed, unless `BROWSER_EGRESS_ALLOW` names them. Refused:
everything `ipaddress` does not call global (private, loopback, link-local, shared/CGNAT,
reserved, documentation, benchmarking, unspecified...), multicast, the cloud metadata
addresses, IPv6 site-local, 6to4 and Teredo (tunnels through relays), and IPv6 addresses that
carry a refused IPv4 address inside (IPv4-mapped, IPv4-compatible, NAT64): a private IPv4
address written in IPv6 is still a private address.

`BROWSER_EGRESS_ALLOW` is a comma-separated list of entries, each one of:
  - a CIDR or a single address (`10.1.0.0/16`, `127.0.0.1`, `fd00::/8`): any port;
  - an address or CIDR with a port (`10.1.2.3:8080`, `[fd00::1]:443`, `10.0.0.0/8:443`);
  - a host name with a port (`intranet.example:443`): that name on that port, whatever it
    resolves to (the operator vouches for the name).
Unset or empty, it is empty in production and loopback (`127.0.0.0/8,::1`) elsewhere, as
ALLOW_PRIVATE_NETWORK_TARGETS is. A malformed entry is an error at start-up, never ignored.

This module reads only the environment (no Django): the egress proxy process imports it.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Metadata services answer on addresses that the ranges below already refuse (link-local,
# CGNAT, ULA, 192.0.0.0/24); named here so that no allowlist CIDR can open them by accident.
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


class PolicyError(ValueError):
    """A malformed BROWSER_EGRESS_ALLOW entry."""


def _parse_address(raw: str) -> IPAddress:
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


def is_forbidden(address: IPAddress) -> bool:
    """True for any address that is not plain global unicast (before the allowlist)."""
    if address in METADATA_ADDRESSES:
        return True
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            # The system connects to the IPv4 address itself. Decided here rather than by the
            # IPv6 address's is_global, whose answer for mapped addresses changed across
            # Python releases.
            return is_forbidden(address.ipv4_mapped)
        if address.sixtofour is not None or address.teredo is not None:
            # Tunnels through relays: nothing a browser needs, and they hide where traffic goes.
            return True
        inner = embedded_ipv4(address)
        if inner is not None and is_forbidden(inner):
            return True
        if address.is_site_local:
            return True
    return address.is_multicast or not address.is_global


@dataclass(frozen=True)
class EgressPolicy:
    networks: tuple[tuple[IPNetwork, int | None], ...] = ()
    names: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, raw: str) -> EgressPolicy:
        networks: list[tuple[IPNetwork, int | None]] = []
        names: set[tuple[str, int]] = set()
        for entry in (item.strip() for item in raw.split(",")):
            if not entry:
                continue
            try:
                networks.append((ipaddress.ip_network(entry, strict=False), None))
                continue
            except ValueError:
                pass
            host, port = _split_host_port(entry)
            try:
                networks.append((ipaddress.ip_network(host, strict=False), port))
            except ValueError:
                if not host or "/" in host or ":" in host:
                    raise PolicyError(f"BROWSER_EGRESS_ALLOW: cannot read {entry!r}") from None
                names.add((host.lower().rstrip("."), port))
        return cls(networks=tuple(networks), names=frozenset(names))

    def _listed(self, address: IPAddress, port: int) -> bool:
        return any(
            address.version == network.version and address in network and allowed_port in (None, port)
            for network, allowed_port in self.networks
        )

    def address_allowed(self, ip: str | IPAddress, port: int) -> bool:
        """May a browser open a connection to `ip`:`port`?"""
        try:
            address = _parse_address(ip) if isinstance(ip, str) else ip
        except ValueError:
            return False
        if self._listed(address, port):
            return True
        # ::ffff:a.b.c.d is how the system reaches a.b.c.d; the other embeddings go elsewhere.
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None and self._listed(mapped, port):
            return True
        return not is_forbidden(address)

    def host_allowed(self, host: str, port: int) -> bool:
        """Is this host name on this port allowed whatever it resolves to?"""
        return (host.lower().rstrip("."), port) in self.names


def _split_host_port(entry: str) -> tuple[str, int]:
    if entry.startswith("["):
        host, sep, rest = entry[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise PolicyError(f"BROWSER_EGRESS_ALLOW: cannot read {entry!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = entry.rpartition(":")
        if not sep:
            raise PolicyError(f"BROWSER_EGRESS_ALLOW: {entry!r} is neither a CIDR nor host:port")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise PolicyError(f"BROWSER_EGRESS_ALLOW: bad port in {entry!r}")
    return host, int(port_text)


def default_allow() -> str:
    production = os.environ.get("BROWSERFLEET_ENV", "production") == "production"
    return "" if production else "127.0.0.0/8,::1"


@lru_cache(maxsize=1)
def policy() -> EgressPolicy:
    """The policy from the environment (read once per process)."""
    raw = os.environ.get("BROWSER_EGRESS_ALLOW", "")
    return EgressPolicy.parse(raw if raw.strip() else default_allow())


def address_allowed(ip: str | IPAddress, port: int) -> bool:
    """May a browser connect to `ip`:`port` under this process's BROWSER_EGRESS_ALLOW?"""
    return policy().address_allowed(ip, port)


def host_allowed(host: str, port: int) -> bool:
    return policy().host_allowed(host, port)
