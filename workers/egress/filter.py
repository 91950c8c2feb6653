"""The mitmproxy addon that decides, connection by connection, where a browser may go.

The check that counts is `server_connect`: mitmproxy is about to open a TCP connection for a
plain HTTP request or a CONNECT tunnel (HTTPS, WebSockets, anything). The addon resolves the
name itself (every A and AAAA answer, workers/egress/dns.py), refuses if any answer is
forbidden, and rewrites the connection's address to the address it checked, so the socket goes
exactly where the check said: a DNS answer that changes afterwards (rebinding) is never looked
up again. Redirects, subresources, meta refresh, fetch and WebSockets are each a request or a
tunnel of their own, so each passes here.

Before that, `request` and `http_connect` run the check to answer a refusal in a form the
browser shows: a plain HTTP request gets a 403 page whose title and `X-Browserfleet-Blocked`
header the worker recognises; a CONNECT gets a 403, which Chromium reports as a failed tunnel.
Their decision (the checked address) is kept for that client connection and host:port, and
`server_connect` uses it: one lookup per CONNECT, not two, and the address pinned is the one
the first check saw. TLS is never decrypted: every tunnel is passed through as bytes
(ignore_hosts matches all).

Whatever the allow list says, a loopback connection to the DevTools port of a browser of this
host is refused (`BrowserPorts`): a page that could reach it could drive every browser here.
Production refuses loopback anyway; this holds where an operator (or the test configuration)
allows 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from mitmproxy import connection, ctx, http
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from project.netpolicy import EgressPolicy
from workers.egress import BLOCKED_ELEMENT_ID, BLOCKED_HEADER, BLOCKED_TITLE, HEALTH_BODY, HEALTH_HOST
from workers.egress.clients import client_key
from workers.egress.dns import CachingResolver, DnsConfig, DnsLookup, Lookup, LookupFailed
from workers.egress.metering import RedisMeter
from workers.egress.pool_probe import PoolProbe
from workers.egress.routes import ROUTES_POLL_SECONDS, DirectoryRoutes
from workers.egress.upstream import PoolHealth, ProxyFailed, Rule, choose, open_tunnel, splice

logger = logging.getLogger(__name__)

# The raw lookup a filter is built with (tests pass a scripted one).
Resolver = Lookup
# A client's (browser's) upstream proxy rules, by client key (workers/egress/upstream.py).
Routes = Callable[[str], list[Rule]]


class Refused(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class BrowserPorts:
    """The DevTools ports of this host's browsers: the `DevToolsActivePort` file Chromium writes
    in each profile under BROWSER_PROFILE_ROOT (sessions' and warm pool's), re-read at most once
    a second."""

    def __init__(self, root: Path | None = None) -> None:
        default = Path(__file__).resolve().parents[2] / "var" / "browsers"
        self.root = root or Path(os.environ.get("BROWSER_PROFILE_ROOT") or default)
        self._ports: frozenset[int] = frozenset()
        self._read_at = 0.0

    def __contains__(self, port: object) -> bool:
        now = time.monotonic()
        if now - self._read_at > 1.0:
            ports = set()
            for path in self.root.glob("*/profile/DevToolsActivePort"):
                try:
                    ports.add(int(path.read_text().split("\n", 1)[0]))
                except (OSError, ValueError):
                    continue
            self._ports, self._read_at = frozenset(ports), now
        return port in self._ports


def _is_loopback(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


class EgressFilter:
    def __init__(
        self,
        policy: EgressPolicy,
        resolver: Resolver | None = None,
        dns_config: DnsConfig | None = None,
        routes: Routes | None = None,
        browser_ports: BrowserPorts | None = None,
        meter: RedisMeter | None = None,
        probe: bool = False,
    ) -> None:
        self.policy = policy
        self.meter = meter
        self.pool_health = PoolHealth()
        # The active probe of the operator's pool (pool_probe.py), when the process runs it.
        self.probe = PoolProbe.from_env(self.pool_health) if probe else None
        self._watch_task: asyncio.Task[None] | None = None
        self.browser_ports = browser_ports or BrowserPorts()
        self.routes = routes
        # Bytes carried through each upstream proxy, by (client key, upstream name).
        self.proxy_bytes: Counter[tuple[str, str]] = Counter()
        config = dns_config or DnsConfig.from_env()
        self.resolver: Resolver = resolver or DnsLookup(config)
        self.dns = CachingResolver(self.resolver, config)
        # Per client connection (its id): who it is, and the addresses its checks chose.
        self._clients: dict[str, str] = {}
        self._checked: dict[str, dict[tuple[str, int], str]] = {}

    def _refuse_browser_port(
        self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
    ) -> None:
        if _is_loopback(address) and port in self.browser_ports:
            raise Refused("blocked_address", f"{address}:{port} is a browser's DevTools endpoint")

    def client(self, conn: connection.Client) -> str:
        key = self._clients.get(conn.id)
        if key is None:
            key = self._clients[conn.id] = client_key(conn.peername, conn.sockname)
        return key

    async def destination(self, host: str, port: int, *, client: str = "") -> str:
        """The address to connect to for host:port, checked; raises Refused."""
        try:
            literal = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None:
            self._refuse_browser_port(literal, port)
            if not self.policy.address_allowed(literal, port):
                raise Refused("blocked_address", f"{literal} is not a public address")
            return str(literal)
        if self.policy.host_allowed(host, port):
            return host  # the operator vouches for the name, whatever it resolves to
        try:
            addresses = await self.dns.resolve(host, port, client=client)
        except LookupFailed as exc:
            raise Refused("unresolvable", str(exc)) from None
        if not addresses:
            raise Refused("unresolvable", f"{host} does not resolve")
        # All answers, not just the first: the browser must not be one retry away from a
        # private address, and a name that mixes public and private answers is a rebinding trick.
        for address in addresses:
            self._refuse_browser_port(address, port)
            if not self.policy.address_allowed(address, port):
                raise Refused("blocked_address", f"{host} resolves to {address}, not a public address")
        return addresses[0]

    def close_client_connections(self, key: str, *, opened_before: float) -> int:
        """Close the connections of the client `key` (a browser) opened before `opened_before`
        (its route's change): its kept-alive connections and tunnels, through whichever upstream,
        end; its next ones (and those opened since) follow its new route."""
        proxyserver = ctx.master.addons.get("proxyserver") if ctx.master else None
        connections = getattr(proxyserver, "connections", {})
        closed = 0
        for conn_id, owner in list(self._clients.items()):
            handler = connections.get(conn_id) if owner == key else None
            if handler is None or (handler.client.timestamp_start or 0) >= opened_before:
                continue
            io = handler.transports.get(handler.client)
            if io is not None and io.handler is not None:
                io.handler.cancel("its upstream route changed")
                closed += 1
        if closed:
            logger.info("route of %s changed: closed its %d connections", key, closed)
        return closed

    async def _watch_routes(self, routes: DirectoryRoutes) -> None:
        while True:
            await asyncio.sleep(ROUTES_POLL_SECONDS)
            try:
                changed = routes.changes()
            except OSError as exc:
                logger.warning("route files not read: %s", exc)
                continue
            for key, when in changed.items():
                self.close_client_connections(key, opened_before=when)

    # mitmproxy hooks -------------------------------------------------------------------------

    def running(self) -> None:
        if self.meter is not None:
            self.meter.start()
        if self.probe is not None:
            self.probe.start()
        if isinstance(self.routes, DirectoryRoutes) and self._watch_task is None:
            self.routes.changes()  # the baseline
            self._watch_task = asyncio.ensure_future(self._watch_routes(self.routes))

    def done(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
        if self.probe is not None:
            self.probe.stop()

    async def _check(self, flow: http.HTTPFlow) -> Refused | None:
        host, port = flow.request.host, flow.request.port
        try:
            address = await self.destination(host, port, client=self.client(flow.client_conn))
        except Refused as refused:
            return refused
        self._checked.setdefault(flow.client_conn.id, {})[(host, port)] = address
        return None

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.host == HEALTH_HOST:
            flow.response = http.Response.make(200, HEALTH_BODY, {"Content-Type": "text/plain"})
            return
        refused = await self._check(flow)
        if refused is not None:
            flow.response = blocked_response(refused, flow.request.pretty_url)

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        refused = await self._check(flow)
        if refused is not None:
            flow.response = blocked_response(refused, f"{flow.request.host}:{flow.request.port}")

    async def server_connect(self, data: ServerConnectionHookData) -> None:
        if data.server.address is None:
            data.server.error = "no destination"
            return
        host, port = data.server.address
        client = self.client(data.client)
        # The request or CONNECT of this client connection was just checked: no new lookup.
        address = self._checked.get(data.client.id, {}).pop((str(host), int(port)), None)
        if address is None:
            try:
                address = await self.destination(str(host), int(port), client=client)
            except Refused as refused:
                logger.info("refused %s:%s: %s", host, port, refused.detail)
                data.server.error = f"{refused.code}: {refused.detail}"
                return
        try:
            upstream = choose(self.routes(client), str(host)) if self.routes else None
        except ProxyFailed as exc:
            data.server.error = f"proxy_error: {exc}"
            return
        if upstream is None:
            # Pin: the socket opens to the address just checked, never to a new lookup.
            data.server.address = (address, port)
            return
        # Through the client's upstream proxy: its own address is checked like any target. A
        # pool rule lists fallbacks: a member that does not answer is taken out of rotation and
        # the next one carries this very connection.
        failure: ProxyFailed | None = None
        for candidate in self.pool_health.candidates(upstream):
            try:
                proxy_address = await self.destination(candidate.host, candidate.port, client=client)
            except Refused as refused:
                logger.info("refused proxy %s for %s:%s: %s", candidate.name, host, port, refused.code)
                data.server.error = f"{refused.code}: the proxy's address is not allowed"
                return
            try:
                tunnel = await open_tunnel(candidate, proxy_address, (str(host), int(port)))
            except ProxyFailed as exc:
                logger.info("proxy failed for %s:%s: %s", host, port, exc)
                failure = exc
                if exc.down and upstream.fallbacks:
                    self.pool_health.down(candidate)
                    continue
                break
            if upstream.fallbacks:
                self.pool_health.up(candidate)
            upstream, failure = candidate, None
            break
        if failure is not None:
            if self.meter is not None and upstream.report:
                await self.meter.failed(upstream.report)
            data.server.error = f"proxy_error: {failure}"
            return
        key = (client, upstream.name)
        meter, sink = upstream.meter, self.meter if upstream.meter else None

        member = upstream.name

        def count(size: int) -> None:
            self.proxy_bytes[key] += size
            if sink is not None:
                sink.add(meter, size, member=member)

        def closed() -> None:
            if sink is not None:
                sink.closed(meter)

        if sink is not None:
            sink.opened(meter)
        data.server.address = ("127.0.0.1", await splice(tunnel, count=count, closed=closed))

    def client_disconnected(self, client: connection.Client) -> None:
        self._clients.pop(client.id, None)
        self._checked.pop(client.id, None)

    def error(self, flow: http.HTTPFlow) -> None:
        # The upstream connection failed (refused, timed out, or refused by server_connect after
        # a DNS answer changed). Closing the browser's connection makes Chromium report a
        # network error (net::ERR_EMPTY_RESPONSE) on its own error page, which the executor
        # already reports as a failed load; a proxy's 502 page would look like a loaded page.
        if flow.response is None and flow.request.method != "CONNECT":
            flow.kill()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Pass bodies through as they arrive: no buffering of downloads in the filter's memory.
        if flow.response is not None and BLOCKED_HEADER not in flow.response.headers:
            flow.response.stream = True


def blocked_response(refused: Refused, target: str) -> http.Response:
    body = (
        f"<!doctype html><html><head><meta charset=utf-8><title>{BLOCKED_TITLE}</title></head>"
        f"<body><h1>{BLOCKED_TITLE}</h1><p id={BLOCKED_ELEMENT_ID} data-code={refused.code}>"
        f"{html.escape(target)}: {html.escape(refused.detail)}</p></body></html>"
    )
    return http.Response.make(
        403,
        body,
        {
            "Content-Type": "text/html; charset=utf-8",
            BLOCKED_HEADER: refused.code,
            "Cache-Control": "no-store",
        },
    )
