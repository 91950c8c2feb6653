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
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass

import ada_url
from django.conf import settings

from project.exceptions import InvalidInput
from project.netpolicy import (
    METADATA_ADDRESSES,
    EgressPolicy,
    IPAddress,
    embedded_ipv4,
    is_metadata,
    parse_egress_allow,
    refusal_reason,
)

DEFAULT_PORTS = {"http:": 80, "https:": 443}

__all__ = [
    "METADATA_ADDRESSES",
    "BlockedAddress",
    "InvalidURL",
    "Resolved",
    "address_refusal",
    "lookup_needed",
    "navigation_url",
    "resolve_hosts",
]


class InvalidURL(InvalidInput):
    code = "invalid_url"
    default_detail = "This URL cannot be opened."


class BlockedAddress(InvalidInput):
    code = "blocked_address"
    default_detail = "This address is not reachable from the browsers."


@functools.cache
def _policy(raw: tuple[str, ...], allow_private: bool) -> EgressPolicy:
    return EgressPolicy(entries=parse_egress_allow(raw), allow_private=allow_private)


def _refuse_raw(url: str) -> None:
    for char in url:
        if char == "\\":
            raise InvalidURL("Backslashes are not allowed in URLs; use '/' (or %5C inside a path).")
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp"):
            raise InvalidURL(
                f"The URL contains the control or whitespace character U+{ord(char):04X}; "
                "percent-encode it (a space is %20)."
            )


def address_refusal(address: IPAddress) -> str | None:
    """Why a browser may not connect to `address` before any allowlist (project/netpolicy.py)."""
    return refusal_reason(address)


def _literal_refusal(address: IPAddress) -> str | None:
    """A host written as an IPv4-mapped or IPv4-compatible IPv6 literal is an IPv4 address in
    disguise: refused in URLs whatever it carries (the URL-level rule; the egress filter, which
    sees addresses and not spellings, judges the IPv4 address inside)."""
    if (
        isinstance(address, ipaddress.IPv6Address)
        and embedded_ipv4(address) is not None
        and (address.ipv4_mapped is not None or int(address) >> 32 == 0)
    ):
        return "an IPv4-mapped or IPv4-compatible IPv6 address, refused like private addresses"
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    if host == "localhost" or host.endswith(".localhost"):
        # Chromium answers these itself with loopback, whatever DNS says (RFC 6761).
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidURL(f"The host {host!r} does not resolve.", code="host_not_found") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


# A host's addresses, or why it has none; kept by a caller across many URLs (a batch job's).
Resolved = dict[tuple[str, int], list[IPAddress] | InvalidURL]


@dataclass(frozen=True)
class _Target:
    href: str
    host: str
    port: int
    literal: IPAddress | None
    policy: EgressPolicy

    @property
    def needs_lookup(self) -> bool:
        """Whether judging this URL takes a DNS lookup (see navigation_url)."""
        return (
            not self.policy.allow_private
            and self.literal is None
            and not self.policy.host_allowed(self.host, self.port)
        )


def _target(raw: str) -> _Target:
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
    host = parsed.hostname
    literal: IPAddress | None = None
    if parsed.host_type == ada_url.HostType.IPV6:
        literal = ipaddress.IPv6Address(host.strip("[]"))
    elif parsed.host_type == ada_url.HostType.IPV4:
        literal = ipaddress.IPv4Address(host)
    return _Target(
        href=parsed.href,
        host=host,
        port=int(parsed.port) if parsed.port else DEFAULT_PORTS[parsed.protocol],
        literal=literal,
        policy=_policy(tuple(settings.BROWSER_EGRESS_ALLOW), bool(settings.ALLOW_PRIVATE_NETWORK_TARGETS)),
    )


def lookup_needed(raw: str) -> tuple[str, int] | None:
    """The (host, port) that navigation_url would look up for `raw`; None when it looks nothing
    up (an address literal, an allowed name, development mode) or refuses the URL unread."""
    try:
        target = _target(raw)
    except InvalidInput:
        return None
    return (target.host, target.port) if target.needs_lookup else None


def resolve_hosts(hosts: Iterable[tuple[str, int]], *, concurrency: int, deadline_seconds: float) -> Resolved:
    """Look many hosts up at once, at most `concurrency` at a time, for at most `deadline_seconds`.

    A host whose lookup has not answered by the deadline is refused ("did not resolve in time"),
    and lookups not yet started never start. getaddrinfo cannot be interrupted: the (at most
    `concurrency`) lookups still running finish in the background, within the system resolver's
    own timeout (resolv.conf), and their answers are dropped.
    """
    wanted = list(dict.fromkeys(hosts))
    out: Resolved = {}
    if not wanted:
        return out
    executor = ThreadPoolExecutor(
        max_workers=max(1, min(concurrency, len(wanted))), thread_name_prefix="resolve"
    )
    futures = {executor.submit(_resolve, host, port): (host, port) for host, port in wanted}
    done, _ = futures_wait(futures, timeout=deadline_seconds)
    executor.shutdown(wait=False, cancel_futures=True)
    for future, (host, port) in futures.items():
        if future not in done:
            out[(host, port)] = InvalidURL(
                f"The host {host!r} did not resolve within {deadline_seconds:g} s.", code="host_not_found"
            )
            continue
        try:
            out[(host, port)] = future.result()
        except InvalidURL as exc:
            out[(host, port)] = exc
    return out


def navigation_url(raw: str, *, resolved: Resolved | None = None) -> str:
    """The URL to hand the browser for the client's `raw` URL; raises InvalidURL or BlockedAddress.

    Every address the host resolves to must be allowed, since the browser may use any of them.
    `resolved` is a cache the caller keeps across many URLs (a batch job's, filled by
    resolve_hosts): each host and port is looked up once.
    """
    target = _target(raw)
    href, host, port, literal, policy = target.href, target.host, target.port, target.literal, target.policy
    if policy.allow_private:
        # Development: anything goes but the metadata service named by address (names are not
        # resolved here; the egress filter checks what they resolve to).
        if literal is not None and is_metadata(literal) and not policy.address_allowed(literal, port):
            raise BlockedAddress(f"{host} is a cloud metadata address; this server does not browse it.")
        return href
    if not target.needs_lookup and literal is None:
        return href
    if literal is not None:
        addresses = [literal]
    elif resolved is None:
        addresses = _resolve(host, port)
    else:
        if (host, port) not in resolved:
            resolved[(host, port)] = _resolve(host, port)
        entry = resolved[(host, port)]
        if isinstance(entry, InvalidURL):
            raise InvalidURL(entry.detail, code=entry.code)
        addresses = entry
    for address in addresses:
        reason = _literal_refusal(address) if literal is not None else None
        if reason is None:
            if policy.address_allowed(address, port):
                continue
            reason = refusal_reason(address) or "not allowed"
        shown = host if literal is not None else f"{host} resolves to {address}, which"
        raise BlockedAddress(
            f"{shown} is {reason}; this server does not browse private or internal addresses."
        )
    return href
