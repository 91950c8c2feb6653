"""A session's upstream proxies (docs/proxies.md): what a tenant may name, the operator's pool,
and the sealed copy the worker turns into the egress filter's route file.

A session's proxy configuration is one of:
- `{"pool": "<member name>"}`: `use_advanced_proxy`, one member of ADVANCED_PROXY_URLS, chosen at
  create and kept for the session (sticky); its bytes are metered (`proxy_mb`).
- `{"rules": [{"server", "username", "password", "domain_pattern"}, ...]}`: the tenant's own
  (`proxies` at create, or `change-proxy`); first match wins, no pattern is the default,
  `"direct"` is no proxy. Not metered.

It is stored sealed (AES-GCM, the saved state's keys and rotation: sessions/state_crypto.py),
bound to the session's id. Credentials are never echoed, logged or put in an error text: every
message here names the host and port at most.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings

from project.exceptions import InvalidInput
from sessions.state_crypto import state_open, state_seal
from sessions.url_policy import navigation_url

MAX_RULES = 20
MAX_CREDENTIAL = 256
_SCHEMES = {"http": 80, "socks5": 1080}
_PATTERN = re.compile(r"^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$|^\*$")
_TAG = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# The associated data of a sealed change-proxy credential (the action's own params).
CHANGE_PROXY_SEAL_ID = "change_proxy"


class InvalidProxy(InvalidInput):
    code = "invalid_proxy"


class ProxyUnavailable(InvalidInput):
    code = "proxy_unavailable"


@dataclass(frozen=True)
class PoolMember:
    name: str  # what logs, the filter and the ledger see: never the URL
    tag: str
    server: str  # http://host:port
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)


def _split(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, username, password) of `scheme://[user:pass@]host:port`; InvalidProxy
    without the URL (it may hold credentials) otherwise."""
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidProxy("A proxy server is a string like http://host:port.")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise InvalidProxy("A proxy's port is a number from 1 to 65535.") from None
    if parts.scheme not in _SCHEMES:
        raise InvalidProxy("A proxy server is http://host:port or socks5://host:port.")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidProxy("A proxy server is http://host:port or socks5://host:port, without a path.")
    return (
        parts.scheme,
        parts.hostname,
        port or _SCHEMES[parts.scheme],
        unquote(parts.username or ""),
        unquote(parts.password or ""),
    )


def _authority(host: str, port: int) -> str:
    try:
        bracketed = ipaddress.ip_address(host).version == 6
    except ValueError:
        bracketed = False
    return f"[{host}]:{port}" if bracketed else f"{host}:{port}"


def proxy_server_check(url: str, *, username: str = "", password: str = "") -> dict[str, str]:
    """A tenant's proxy, checked: `{"server": "http://host:port", "username", "password"}`.

    The proxy's own address is judged by the navigation check (sessions/url_policy.py): a proxy on
    a private or internal address is 400 `blocked_address`, as a navigation there would be (the
    egress filter checks it again at every connection).
    """
    if url == "direct":
        return {"server": "direct", "username": "", "password": ""}
    scheme, host, port, url_user, url_password = _split(url)
    username, password = username or url_user, password or url_password
    if len(username) > MAX_CREDENTIAL or len(password) > MAX_CREDENTIAL:
        raise InvalidProxy(f"A proxy's username and password are at most {MAX_CREDENTIAL} characters.")
    if any(c in "\r\n\0" for c in username + password):
        raise InvalidProxy("A proxy's username and password cannot hold line breaks.")
    authority = _authority(host, port)
    navigation_url(f"http://{authority}/")  # InvalidURL / BlockedAddress, naming the host only
    return {"server": f"{scheme}://{authority}", "username": username, "password": password}


def proxies_check(items: Any) -> list[dict[str, str]]:
    """The create's `proxies` list, checked and normalised (credentials kept, for sealing)."""
    if not isinstance(items, list) or not items:
        raise InvalidProxy(
            "`proxies` is a non-empty list of {server, username?, password?, domain_pattern?}."
        )
    if len(items) > MAX_RULES:
        raise InvalidProxy(f"`proxies` holds at most {MAX_RULES} rules.")
    rules = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("server"), str):
            raise InvalidProxy(f'proxies[{index}] needs a `server` (http://host:port or "direct").')
        unknown = set(item) - {"server", "username", "password", "domain_pattern", "type"}
        if unknown:
            raise InvalidProxy(f"proxies[{index}]: unknown fields {', '.join(sorted(unknown))}.")
        credentials = [item.get("username", ""), item.get("password", "")]
        if not all(isinstance(value, str) for value in credentials):
            raise InvalidProxy(f"proxies[{index}]: username and password are strings.")
        pattern = item.get("domain_pattern") or ""
        if not isinstance(pattern, str) or len(pattern) > 253 or (pattern and not _PATTERN.match(pattern)):
            raise InvalidProxy(
                f"proxies[{index}]: domain_pattern is a host name, optionally starting with `*.`."
            )
        try:
            rule = proxy_server_check(item["server"], username=credentials[0], password=credentials[1])
        except InvalidInput as exc:
            raise type(exc)(f"proxies[{index}]: {exc.detail}", code=exc.code) from None
        rules.append({**rule, "domain_pattern": pattern})
    return rules


def proxies_public(rules: list[dict[str, str]]) -> list[dict[str, str | None]]:
    """What a session echoes of its rules: servers and patterns, never credentials."""
    return [
        {"server": rule["server"], "domain_pattern": rule.get("domain_pattern") or None} for rule in rules
    ]


@functools.cache
def _pool(raw: tuple[str, ...]) -> tuple[PoolMember, ...]:
    members = []
    for index, item in enumerate(raw, start=1):
        tag, _, url = item.partition("=") if "=" in item.split("://", 1)[0] else ("", "", item)
        if tag and not _TAG.match(tag):
            raise InvalidProxy(f"ADVANCED_PROXY_URLS item {index}: a tag is letters, digits, - or _.")
        scheme, host, port, username, password = _split(url)
        members.append(
            PoolMember(
                name=f"pool-{tag.lower() + '-' if tag else ''}{index}",
                tag=tag.lower(),
                server=f"{scheme}://{_authority(host, port)}",
                username=username,
                password=password,
            )
        )
    return tuple(members)


def advanced_pool() -> tuple[PoolMember, ...]:
    return _pool(tuple(settings.ADVANCED_PROXY_URLS))


def proxies_available() -> None:
    """Raise ProxyUnavailable unless a proxy can be honoured here: never silently direct."""
    if settings.BROWSER_BACKEND != "local":
        raise ProxyUnavailable(
            "Upstream proxies need the local browser backend: on a Selenium Grid the egress filter "
            "cannot tell one session's traffic from another's yet. Nothing was created."
        )
    if (
        not settings.EGRESS_ROUTES_DIR
        or not settings.BROWSER_EGRESS_ENABLED
        or settings.BROWSER_SANDBOX == "off"
    ):
        raise ProxyUnavailable(
            "This server is not set up for upstream proxies (EGRESS_ROUTES_DIR, the egress filter and "
            "a sandbox uid per browser are needed). Nothing was created."
        )


def pool_choose(*, session_id: str, country: str = "") -> PoolMember:
    """The pool member a session keeps (sticky): spread by the session's id over the members
    with the tag `country` (all members without one)."""
    pool = advanced_pool()
    if not pool:
        raise ProxyUnavailable("This server has no advanced proxy pool (ADVANCED_PROXY_URLS).")
    members = [m for m in pool if m.tag == country.lower()] if country else list(pool)
    if not members:
        tags = sorted({m.tag for m in pool if m.tag})
        raise ProxyUnavailable(
            f"No advanced proxy is tagged {country!r}; tags: {', '.join(tags) or 'none'}.",
            code="proxy_country_unavailable",
        )
    return members[_spread(session_id, len(members))]


def _member_rule(member: PoolMember) -> dict[str, Any]:
    return {
        "server": member.server,
        "username": member.username,
        "password": member.password,
        "name": member.name,
    }


def _spread(session_id: str, count: int) -> int:
    digest = int.from_bytes(hashlib.sha256(session_id.encode()).digest()[:8], "big")
    return digest % count if count else 0


def proxy_config_seal(*, session_id: str, config: dict[str, Any]) -> bytes:
    return state_seal(state_id=f"proxies:{session_id}", plaintext=json.dumps(config).encode())


def proxy_config_open(*, session_id: str, sealed: bytes | memoryview) -> dict[str, Any]:
    opened: dict[str, Any] = json.loads(state_open(state_id=f"proxies:{session_id}", sealed=bytes(sealed)))
    return opened


def route_document(
    *, session_id: str, config: dict[str, Any], meter: str = "", report: str = ""
) -> dict[str, Any]:
    """The egress filter's route file for a session's browser (workers/egress/routes.py); a job's
    browser passes the job's id as `session_id` (its sealed configuration's binding).

    `meter` (the session by default; a job browser's own id) is what the filter reports the bytes
    of `metered` rules (the pool's) under; `report`, when given, where it counts the connections
    an upstream failed (a job browser's runner tells a proxy's failure from the target's by it).
    ProxyUnavailable if the pool member is no longer configured.
    """
    if config.get("pool"):
        member = next((m for m in advanced_pool() if m.name == config["pool"]), None)
        if member is None:
            raise ProxyUnavailable(f"The advanced proxy {config['pool']} is no longer configured.")
        # The members that carry its connections while its own is out of rotation (the filter's
        # PoolHealth): those of its country (every other member without one), in an order of the
        # session's own, so that sessions spread over them.
        country = str(config.get("country") or "")
        others = [m for m in advanced_pool() if m != member and (not country or m.tag == member.tag)]
        offset = _spread(session_id, len(others))
        rules: list[dict[str, Any]] = [
            {
                **_member_rule(member),
                "metered": True,
                "fallbacks": [_member_rule(m) for m in others[offset:] + others[:offset]],
            }
        ]
    else:
        rules = [
            {
                "server": rule["server"],
                "username": rule.get("username", ""),
                "password": rule.get("password", ""),
                "domain_pattern": rule.get("domain_pattern", ""),
            }
            for rule in config.get("rules", [])
        ]
    return {"rules": rules, "meter": meter or session_id, **({"report": report} if report else {})}
