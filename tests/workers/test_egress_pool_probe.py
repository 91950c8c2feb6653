"""The operator's pool probed actively and its health shared by every filter process (issue 24):
two filter processes as they run in production, one probing the pool and one only reading what
the probes saw (Redis), two loopback pool members of the test's own that count their tunnels."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from tests.conftest import free_port
from tests.support.plain_page import plain_page
from tests.support.processes import start_egress, stop_process, wait_until
from tests.support.upstream_proxies import UpstreamProxy
from workers.egress.pool_probe import HEALTH_KEY


@pytest.fixture
def page_port() -> Iterator[int]:
    with plain_page(b"hello") as port:
        yield port


def _health(member: UpstreamProxy) -> bool | None:
    raw = redis.Redis.from_url(os.environ["REDIS_URL"]).hget(HEALTH_KEY, f"127.0.0.1:{member.port}")
    return None if raw is None else bool(json.loads(raw)["up"])


def test_a_dead_member_is_skipped_by_every_filter_before_a_request_hits_it_and_comes_back(
    tmp_path: Path, page_port: int
) -> None:
    a = UpstreamProxy("A", listen_port=free_port()).start()
    b = UpstreamProxy("B").start()
    pool = f"us=http://127.0.0.1:{a.port},de=http://127.0.0.1:{b.port}"
    processes, ports = [], []
    for name, probe_seconds in (("prober", "0.2"), ("reader", "0")):
        routes = tmp_path / name
        routes.mkdir(mode=0o700)
        port = free_port()
        env = {
            **os.environ,
            "BROWSER_EGRESS_PORT": str(port),
            "BROWSER_EGRESS_ALLOW": "127.0.0.1/32",
            "EGRESS_ROUTES_DIR": str(routes),
            "ADVANCED_PROXY_URLS": pool,
            "PROXY_PROBE_SECONDS": probe_seconds,
        }
        processes.append(start_egress(env=env, log=tmp_path / f"{name}.log"))
        ports.append(port)
        # This process's browser is a pool session whose own member is A, B its fallback.
        route = routes / f"uid-{os.geteuid()}.json"
        member_a = {"server": f"http://127.0.0.1:{a.port}", "name": "pool-us-1"}
        member_b = {"server": f"http://127.0.0.1:{b.port}", "name": "pool-de-2"}
        route.write_text(json.dumps({"rules": [{**member_a, "fallbacks": [member_b]}]}))
        route.chmod(0o600)
    reader = {"http": f"http://127.0.0.1:{ports[1]}"}
    target = f"http://127.0.0.1:{page_port}/"
    log = tmp_path / "reader.log"
    try:
        wait_until(lambda: _health(a) is True, timeout=10, message="the probe to find A up")
        assert requests.get(target, proxies=reader, timeout=10).status_code == 200
        assert len(a.tunnels) == 1 and b.tunnels == []

        a.stop()
        wait_until(lambda: _health(a) is False, timeout=10, message="the probe to find A down")
        assert _health(b) is True
        wait_until(
            lambda: f"127.0.0.1:{a.port} is out of rotation" in log.read_text(),
            timeout=10,
            message="the reader to learn it",
        )
        # The reader never probed and no request of its own failed on A: it learnt it from the
        # prober. Its next connections go through B from the first try.
        wait_until(
            lambda: (
                requests.get(target, proxies=reader, timeout=10).status_code == 200 and len(b.tunnels) >= 1
            ),
            timeout=10,
            message="a request through B",
        )
        for _ in range(3):
            assert requests.get(target, proxies=reader, timeout=10).status_code == 200
        assert "proxy failed" not in log.read_text()

        a = UpstreamProxy("A", listen_port=a.port).start()  # the same member answers again
        wait_until(lambda: _health(a) is True, timeout=10, message="the probe to find A up again")
        wait_until(
            lambda: f"127.0.0.1:{a.port} is back in rotation" in log.read_text(),
            timeout=10,
            message="the reader to learn it",
        )
        wait_until(
            lambda: (
                requests.get(target, proxies=reader, timeout=10).status_code == 200 and len(a.tunnels) >= 1
            ),
            timeout=10,
            message="the session back on its own member A",
        )
        assert "proxy failed" not in log.read_text()
    finally:
        for process in processes:
            stop_process(process)
        a.stop()
        b.stop()
