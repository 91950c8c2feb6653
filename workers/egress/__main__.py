"""Run the egress filter: `python -m workers.egress [--host H] [--port P]`.

Reads BROWSER_EGRESS_PORT, BROWSER_EGRESS_ALLOW and ALLOW_PRIVATE_NETWORK_TARGETS (project/netpolicy.py),
EGRESS_DNS_* (workers/egress/dns.py), EGRESS_ROUTES_DIR and BROWSER_SANDBOX_UID_BASE
(workers/egress/routes.py), REDIS_URL
(proxy byte counts, workers/egress/metering.py) and ADVANCED_PROXY_URLS, PROXY_PROBE_SECONDS and
PROXY_PROBE_TARGET (the pool's active health, workers/egress/pool_probe.py) from the environment.
Listens on 127.0.0.1 unless told otherwise (a container serving browsers on other hosts binds
0.0.0.0 and relies on its network for isolation).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import tempfile
from pathlib import Path

from mitmproxy import options
from mitmproxy.addons import core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from project.netpolicy import policy
from workers.egress import DEFAULT_PORT, sandbox_uids
from workers.egress.dns import DnsConfig
from workers.egress.filter import EgressFilter
from workers.egress.metering import RedisMeter
from workers.egress.routes import DirectoryRoutes


def configure(master: Master, *, host: str, port: int) -> None:
    """Options that addons define can only be set once the addons are loaded."""
    master.options.update(
        listen_host=host,
        listen_port=port,
        mode=["regular"],
        # Never decrypt: every tunnel (HTTPS, WebSockets) is passed through as bytes. The
        # filter checks where it goes, not what it carries.
        ignore_hosts=[".*"],
        # Open the upstream connection when a CONNECT arrives, so a refused tunnel answers the
        # CONNECT itself with an error (the browser sees a failed tunnel, never a hang).
        connection_strategy="eager",
        # One browser tab must not make the filter hold a whole download in memory.
        stream_large_bodies="1m",
    )


def build_master(*, host: str, port: int, egress_filter: EgressFilter, confdir: str) -> Master:
    # mitmproxy writes a CA into confdir at start; nothing uses it (TLS is never intercepted).
    master = Master(options.Options(confdir=confdir))
    # Only what a plain forwarding proxy needs. mitmproxy's default set (about 30 addons:
    # replay, rewriting, saving, scripts...) sees every event of every request: with it a request
    # through the filter cost 6.2 ms instead of 0.7 ms (bench/egress_overhead.py).
    master.addons.add(
        core.Core(),
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        disable_h2c.DisableH2C(),
        errorcheck.ErrorCheck(),
        egress_filter,
    )
    configure(master, host=host, port=port)
    return master


async def serve(*, host: str, port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bf-egress-") as scratch:
        confdir = os.environ.get("BROWSER_EGRESS_CONFDIR") or scratch
        routes_dir = os.environ.get("EGRESS_ROUTES_DIR", "")
        redis_url = os.environ.get("REDIS_URL", "")
        egress_filter = EgressFilter(
            policy(),
            routes=(
                DirectoryRoutes(Path(routes_dir), sandbox_uids=sandbox_uids(dict(os.environ)))
                if routes_dir
                else None
            ),
            # Bytes through the operator's pool are reported to Redis for billing.
            meter=RedisMeter(redis_url) if routes_dir and redis_url else None,
            # The operator's pool, probed and its health shared through Redis (pool_probe.py).
            probe=bool(routes_dir),
        )
        master = build_master(host=host, port=port, egress_filter=egress_filter, confdir=confdir)
        # Supervisors stop it with SIGTERM: shut down cleanly, so the scratch directory goes too.
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, master.shutdown)
        await master.run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.egress", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("BROWSER_EGRESS_PORT") or DEFAULT_PORT)
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    policy()  # a malformed BROWSER_EGRESS_ALLOW stops the start here, not at the first request
    DnsConfig.from_env()  # likewise a malformed EGRESS_DNS_* variable
    # mitmproxy logs every connection at INFO; refusals (ours) are enough.
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)
    print(f"egress filter listening on {args.host}:{args.port}", flush=True)
    asyncio.run(serve(host=args.host, port=args.port))


if __name__ == "__main__":
    main()
