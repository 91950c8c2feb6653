"""Proxy byte counts survive a Redis that restarts without its data (issue 24): the egress filter
process keeps each meter's running total and writes them all again when Redis no longer knows it.
The test's own Redis (nothing on disk), a filter process, a pool member of the test's own."""

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
from tests.support.private_services import PrivateRedis
from tests.support.processes import start_egress, stop_process, wait_until
from tests.support.upstream_proxies import UpstreamProxy
from workers.egress.metering import meter_key, meter_read

pytestmark = pytest.mark.faults


@pytest.fixture
def page_port() -> Iterator[int]:
    with plain_page(b"x" * 50_000) as port:
        yield port


def test_bytes_counted_but_not_charged_come_back_after_a_redis_restart(
    tmp_path: Path, page_port: int
) -> None:
    private = PrivateRedis(tmp_path / "redis")
    private.start()
    member = UpstreamProxy("pool").start()
    routes = tmp_path / "routes"
    routes.mkdir(mode=0o700)
    port = free_port()
    env = {
        **os.environ,
        "BROWSER_EGRESS_PORT": str(port),
        "BROWSER_EGRESS_ALLOW": "127.0.0.1/32",
        "EGRESS_ROUTES_DIR": str(routes),
        "REDIS_URL": private.url,
    }
    route = routes / f"uid-{os.geteuid()}.json"
    route.write_text(
        json.dumps(
            {
                "rules": [{"server": f"http://127.0.0.1:{member.port}", "name": "pool-x", "metered": True}],
                "meter": "comp_restart",
            }
        )
    )
    route.chmod(0o600)
    log = tmp_path / "egress.log"
    process = start_egress(env=env, log=log)
    via = {"http": f"http://127.0.0.1:{port}"}
    target = f"http://127.0.0.1:{page_port}/"

    def counted() -> tuple[int, int]:
        try:
            return meter_read(redis.Redis.from_url(private.url).hgetall(meter_key("comp_restart")))
        except redis.RedisError:
            return (-1, -1)

    try:
        assert requests.get(target, proxies=via, timeout=10).status_code == 200
        wait_until(lambda: counted() == (member.carried, 0), timeout=10, message="the bytes counted")
        carried = member.carried
        assert carried > 50_000

        private.stop()
        private.start()  # the same port, nothing kept: every count is gone
        wait_until(
            lambda: counted() == (carried, 0), timeout=15, message="the filter to write its totals again"
        )
        assert "did not know this filter's proxy byte counts" in log.read_text()

        # And counting goes on from there.
        assert requests.get(target, proxies=via, timeout=10).status_code == 200
        wait_until(lambda: counted() == (member.carried, 0), timeout=10, message="the new bytes counted")
        assert member.carried > carried
    finally:
        stop_process(process)
        member.stop()
        private.stop()
