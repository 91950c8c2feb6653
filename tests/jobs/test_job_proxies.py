"""Batch jobs through upstream proxies (issue 24): real Chromium behind the real egress filter and
worker, and loopback upstream proxies of the tests' own (tests/support/upstream_proxies.py) that
record every tunnel they open. `proxied.test` (on the test site's port) is a name allowed by the
test configuration that resolves nowhere: only an upstream proxy, to which every name is
127.0.0.1, reaches it, so a page there that loads went through the proxy."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from billing.models import LedgerEntry, Price
from billing.selectors import balances_mismatched
from jobs.models import Job
from sessions.proxy_billing import mb_started
from tests.jobs.conftest import ledger, results, submit, wait_job
from tests.support.processes import wait_until
from tests.support.upstream_proxies import UpstreamProxy

SECRET = "job-proxy-s3cret"
PROXIED = f"proxied.test:{os.environ['BF_TEST_SITE_PORT']}"


def _logs(tmp_path_factory: pytest.TempPathFactory) -> str:
    base = tmp_path_factory.getbasetemp()
    return "".join(p.read_text(errors="replace") for p in base.glob("*/*.log"))


def _route_files() -> list[Path]:
    """Route files with a proxy in them (every other browser has a direct one)."""
    found = []
    for path in Path(settings.EGRESS_ROUTES_DIR).glob("uid-*.json"):
        with contextlib.suppress(FileNotFoundError):
            if json.loads(path.read_text()).get("rules"):
                found.append(path)
    return found


@pytest.fixture
def proxy_a() -> Iterator[UpstreamProxy]:
    proxy = UpstreamProxy("A", credentials=f"alice:{SECRET}").start()
    yield proxy
    proxy.stop()


def test_a_jobs_rule_sends_one_host_through_proxy_a_and_the_rest_direct(
    client, site, proxy_a, tmp_path_factory
):
    urls = [f"http://{PROXIED}/p/1", f"{site.url}/p/2"]
    rules = [
        {
            "server": f"http://127.0.0.1:{proxy_a.port}",
            "username": "alice",
            "password": SECRET,
            "domain_pattern": "proxied.test",
        },
        {"server": "direct"},
    ]
    job = submit(client, {"urls": urls, "proxies": rules})
    assert job["proxies"] == [
        {"server": f"http://127.0.0.1:{proxy_a.port}", "domain_pattern": "proxied.test"},
        {"server": "direct", "domain_pattern": None},
    ]
    done = wait_job(client, job["id"])
    rows = {row["url"]: row for row in results(client, job["id"])}
    assert [rows[url]["status"] for url in urls] == ["succeeded", "succeeded"], rows
    assert rows[urls[0]]["data"]["name"] == "Product 1" and rows[urls[1]]["data"]["name"] == "Product 2"
    # Proxy A carried the matching host only (with the job's credentials); 127.0.0.1 went direct.
    assert proxy_a.tunnels and set(proxy_a.tunnels) == {PROXIED}
    assert set(proxy_a.auth_seen) == {"Basic YWxpY2U6am9iLXByb3h5LXMzY3JldA=="}  # alice:job-proxy-s3cret
    # A tenant's own proxies are not charged for bytes; the pages are, as any page.
    assert done["proxy_bytes"] == 0 and "proxy" not in [kind for kind, _ in ledger(client.account.pk)]
    assert done["credits_used"] == 2 * Job.objects.get(pk=job["id"]).page_price
    wait_until(lambda: _route_files() == [], timeout=30, message="the job browsers' route files to go")
    texts = client.get(f"/v1/jobs/{job['id']}").text + client.get("/v1/jobs").text + _logs(tmp_path_factory)
    assert SECRET not in texts


def test_a_failing_proxy_is_a_retried_uncharged_proxy_error(client, site, tmp_path_factory):
    wrong = UpstreamProxy("B", credentials="alice:the-right-one").start()
    # Bound and never listening: refused, and no other server of the run can take the port.
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    dead = held.getsockname()[1]
    direct_before = site.hits["/p/4"]  # the site is the session's: other tests load its pages
    try:
        urls = [f"http://{PROXIED}/p/3", f"{site.url}/p/4"]
        rules = [
            {
                "server": f"http://127.0.0.1:{wrong.port}",
                "username": "alice",
                "password": SECRET,  # not what B asks for: 407
                "domain_pattern": "proxied.test",
            },
            {"server": f"http://127.0.0.1:{dead}"},  # connection refused
        ]
        job = submit(client, {"urls": urls, "proxies": rules, "max_retries": 1})
        done = wait_job(client, job["id"])
    finally:
        wrong.stop()
        held.close()
    rows = {row["url"]: row for row in results(client, job["id"])}
    for url in urls:
        row = rows[url]
        assert row["status"] == "failed" and row["error"]["code"] == "proxy_error", row
        assert row["attempts"] == 2 and row["credits"] == 0, row  # retried, never charged
        assert SECRET not in row["error"]["message"]
    assert wrong.tunnels == [] and len(wrong.auth_seen) >= 2
    assert site.hits["/p/4"] == direct_before  # never reached directly either
    assert done["credits_used"] == 0 and done["credits_reserved"] == 0
    kinds = [kind for kind, _ in ledger(client.account.pk)]
    assert "job_page" not in kinds and kinds.count("job_hold") == 1
    assert client.get("/v1/account").json()["balance"] == 100_000
    assert balances_mismatched() == []
    assert SECRET not in _logs(tmp_path_factory)


def _pool_port(tag: str) -> int:
    for item in settings.ADVANCED_PROXY_URLS:
        if item.startswith(f"{tag}="):
            return int(urlsplit(item.split("=", 1)[1]).port or 0)
    raise AssertionError(f"no pool member tagged {tag}")


def test_an_advanced_proxy_jobs_bytes_are_charged_once_and_shown(client, site):
    member = UpstreamProxy("us", listen_port=_pool_port("us")).start()
    try:
        urls = [f"{site.url}/p/{n}" for n in (5, 6, 7)]
        job = submit(
            client,
            {"urls": urls, "use_advanced_proxy": True, "proxy_country": "us", "max_concurrency": 2},
        )
        done = wait_job(client, job["id"])
        assert done["counts"]["succeeded"] == 3
        assert member.tunnels and set(member.tunnels) == {urlsplit(site.url).netloc}
        charges = LedgerEntry.objects.filter(account=client.account, kind=LedgerEntry.Kind.PROXY)
        wait_until(
            lambda: Job.objects.get(pk=job["id"]).proxy_bytes == member.carried,
            timeout=30,
            message="the job's pool bytes to be charged",
        )
    finally:
        member.stop()
    shown = client.get(f"/v1/jobs/{job['id']}").json()
    assert shown["use_advanced_proxy"] is True and shown["proxy_country"] == "us"
    assert shown["proxy_bytes"] == member.carried > 0
    assert shown["proxy_mb"] == mb_started(member.carried)
    price = Price.objects.get(item="proxy_mb").credits
    assert -sum(charges.values_list("amount", flat=True)) == price * mb_started(member.carried)
    # The reconcile's pass over the job's browsers charges nothing more.
    from workers.services import job_proxy_bytes_bill

    count = charges.count()
    job_proxy_bytes_bill()
    assert charges.count() == count
    usage = client.get("/v1/usage").json()
    assert usage["proxy_mb"] == mb_started(member.carried)
    assert usage["credits_by_kind"]["proxy"] == price * mb_started(member.carried)
    assert balances_mismatched() == []
    # The operator's dashboard counts the member's bytes of the day (every filter adds to it).
    from django.utils import timezone

    from project.proxy_pool import pool_bytes_key
    from project.redis import get_redis

    counted = get_redis().hget(pool_bytes_key(timezone.now().date()), "pool-us-1")
    assert int(counted or 0) >= member.carried
