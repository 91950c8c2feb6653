"""Which URLs a tenant's browser may be told to open, judged the way the browser will read them.

Python's `urlsplit` and a browser's WHATWG parser disagree about backslashes, userinfo, control
characters and numeric hosts: `http://127.0.0.2:8\\x@1.1.1.1/` is host 1.1.1.1 to Python and
127.0.0.2 to Chromium. So the URL is parsed here with a WHATWG parser (ada, the parser Node.js
uses), the host that parser sees is resolved and checked, and the caller gets back the parser's
serialisation: that string, never the client's, is what the worker hands to the browser.
Characters on which parsers are known to disagree are refused outright before parsing.

This checks the first request only. Redirects, subresources and names that re-resolve later are
the egress filter's job (docs/decisions.md).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import unicodedata

import ada_url
from django.conf import settings

from project.egress_allow import AllowEntry, IPAddress, parse_egress_allow
from project.exceptions import InvalidInput

DEFAULT_PORTS = {"http:": 80, "https:": 443}

# Cloud metadata services: refused even when the operator allows private ranges broadly; only
# an allow entry for exactly this address opens them.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack...
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6
    }
)
# Not global, though some Python versions' `is_global` says otherwise.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in ("192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15", "fec0::/10", "100::/64", "2001::/23")
)
# NAT64 (RFC 6052): a gateway turns these into the IPv4 address in the low 32 bits.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class InvalidURL(InvalidInput):
    code = "invalid_url"
    default_detail = "This URL cannot be opened."


class BlockedAddress(InvalidInput):
    code = "blocked_address"
    default_detail = "This address is not reachable from the browsers."


@functools.cache
def _allow_entries(raw: tuple[str, ...]) -> tuple[AllowEntry, ...]:
    return parse_egress_allow(list(raw))


def _refuse_raw(url: str) -> None:
    for char in url:
        if char == "\\":
            raise InvalidURL("Backslashes are not allowed in URLs; use '/' (or %5C inside a path).")
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp"):
            raise InvalidURL(
                f"The URL contains the control or whitespace character U+{ord(char):04X}; "
                "percent-encode it (a space is %20)."
            )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a v6 address stands for on the way out, if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # IPv4-compatible (::a.b.c.d, deprecated): no longer routed, but some stacks still map it.
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why a browser may not connect to `address` (None if it is a public unicast address)."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            if address.ipv4_mapped is not None or int(address) >> 32 == 0:
                return "an IPv4-mapped or IPv4-compatible IPv6 address"
            inner = address_refusal(embedded)
            if inner is not None:
                return f"an IPv6 address that carries {embedded}, {inner}"
    # is_global is the base: it is False for private, loopback, link-local, CGNAT (100.64/10),
    # reserved, unspecified and documentation ranges. Multicast can be "global": refused too.
    if address.is_multicast:
        return "a multicast address"
    if (
        not address.is_global
        or address.is_reserved
        or address.is_unspecified
        or any(address in net for net in _EXTRA_BLOCKED if net.version == address.version)
    ):
        return "a private, loopback, link-local or reserved address"
    return None


def _allowed_by(entries: tuple[AllowEntry, ...], *, host: str, address: IPAddress | None, port: int) -> bool:
    for entry in entries:
        if not entry.allows(host=host, address=address, port=port):
            continue
        if address in METADATA_ADDRESSES and entry.host is None:
            assert entry.network is not None
            if entry.network.num_addresses != 1:
                continue  # a broad range never opens the metadata service by accident
        return True
    return False


def _resolve(host: str, port: int) -> list[IPAddress]:
    if host == "localhost" or host.endswith(".localhost"):
        # Chromium answers these itself with loopback, whatever DNS says (RFC 6761).
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidURL(f"The host {host!r} does not resolve.", code="host_not_found") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def navigation_url(raw: str, *, resolved: dict[tuple[str, int], list[IPAddress]] | None = None) -> str:
    """The URL to hand the browser for the client's `raw` URL; raises InvalidURL or BlockedAddress.

    Every address the host resolves to must be allowed, since the browser may use any of them.
    `resolved` is a cache the caller keeps across many URLs (a batch job's): each host and port
    is looked up once.
    """
    url = raw.strip(" ")
    _refuse_raw(url)
    try:
        parsed = ada_url.URL(url)
    except ValueError:
        raise InvalidURL("This is not a valid URL.") from None
    if parsed.protocol not in DEFAULT_PORTS or not parsed.hostname:
        raise InvalidURL("Only http and https URLs with a host can be opened.")
    authority = url.split("//", 1)[1] if "//" in url else ""
    authority = authority.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if parsed.username or parsed.password or "@" in authority:
        raise InvalidURL("URLs with a user name or password (user@host) are not allowed.")
    href = parsed.href
    host = parsed.hostname
    port = int(parsed.port) if parsed.port else DEFAULT_PORTS[parsed.protocol]
    literal: IPAddress | None = None
    if parsed.host_type == ada_url.HostType.IPV6:
        literal = ipaddress.IPv6Address(host.strip("[]"))
    elif parsed.host_type == ada_url.HostType.IPV4:
        literal = ipaddress.IPv4Address(host)
    entries = _allow_entries(tuple(settings.BROWSER_EGRESS_ALLOW))
    if settings.ALLOW_PRIVATE_NETWORK_TARGETS:
        # Development: anything goes but the metadata service named by address.
        if literal in METADATA_ADDRESSES and not _allowed_by(entries, host=host, address=literal, port=port):
            raise BlockedAddress(f"{host} is a cloud metadata address; this server does not browse it.")
        return href
    if literal is None and _allowed_by(entries, host=host, address=None, port=port):
        return href
    if literal is not None:
        addresses = [literal]
    elif resolved is None:
        addresses = _resolve(host, port)
    else:
        if (host, port) not in resolved:
            resolved[(host, port)] = _resolve(host, port)
        addresses = resolved[(host, port)]
    for address in addresses:
        reason = address_refusal(address)
        if reason is None or _allowed_by(entries, host=host, address=address, port=port):
            continue
        shown = host if literal is not None else f"{host} resolves to {address}, which"
        raise BlockedAddress(
            f"{shown} is {reason}; this server does not browse private or internal addresses."
        )
    return href
