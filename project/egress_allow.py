"""`BROWSER_EGRESS_ALLOW`: the private destinations an operator lets browsers reach anyway.

A comma-separated list; each entry is one of
  - a network or address: `10.20.0.0/16`, `127.0.0.1`, `fd12::/64` (any port);
  - an address and port: `127.0.0.1:8080`, `[::1]:8080` (that port only);
  - a host name and port: `wiki.internal:443` (that name and port, whatever it resolves to).
The navigation check (`sessions/url_policy.py`) and the egress filter read the same list, so one
setting says where browsers may go. Parsed once at start-up: a malformed entry stops the process.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AllowEntry:
    network: IPNetwork | None = None
    host: str | None = None  # a lower-case host name, when the entry names one
    port: int | None = None  # None: any port

    def allows(self, *, host: str, address: IPAddress | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return host.lower().rstrip(".") == self.host
        return address is not None and self.network is not None and address in self.network


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"BROWSER_EGRESS_ALLOW entry {entry!r}: the port must be 1-65535.")
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
            raise ValueError(f"BROWSER_EGRESS_ALLOW entry {entry!r}: write [v6-address]:port.")
        try:
            return AllowEntry(network=ipaddress.ip_network(address), port=_port(port, entry))
        except ValueError as exc:
            raise ValueError(f"BROWSER_EGRESS_ALLOW entry {entry!r}: {exc}") from None
    host, sep, port = entry.rpartition(":")
    if not sep or not host or ":" in host:
        raise ValueError(f"BROWSER_EGRESS_ALLOW entry {entry!r} is neither a CIDR, an address nor host:port.")
    try:
        return AllowEntry(network=ipaddress.ip_network(host), port=_port(port, entry))
    except ValueError:
        pass
    name = host.lower().rstrip(".")
    if not all(part and all(c.isalnum() or c == "-" for c in part) for part in name.split(".")):
        raise ValueError(f"BROWSER_EGRESS_ALLOW entry {entry!r}: {host!r} is not a host name.")
    return AllowEntry(host=name, port=_port(port, entry))


def parse_egress_allow(entries: list[str]) -> tuple[AllowEntry, ...]:
    return tuple(parse_entry(entry) for entry in entries if entry.strip())
