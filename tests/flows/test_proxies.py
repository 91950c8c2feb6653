"""Upstream proxies through the API (issue 24): real Chromium behind the real egress filter, the
tzafon SDK, and two loopback upstream proxies of the tests' own per role (the operator's pool on
the ports ADVANCED_PROXY_URLS names, tests/support/test_env.py; a tenant's own on any port) that
record every tunnel they open."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from billing.models import LedgerEntry, Price
from sessions.models import BrowserSession
from sessions.proxy_billing import mb_started
from tests.support.processes import wait_until
from tests.support.upstream_proxies import UpstreamProxy

SECRET = "s3cret-pw"
POOL_SECRET = "pool-s3cret"


def _pool_port(tag: str) -> int:
    for item in settings.ADVANCED_PROXY_URLS:
        if item.startswith(f"{tag}="):
            return int(urlsplit(item.split("=", 1)[1]).port or 0)
    raise AssertionError(f"no pool member tagged {tag}")


@pytest.fixture
def pool() -> Iterator[dict[str, UpstreamProxy]]:
    """The operator's pool members, up: `us` open, `de` asking for the pool's credentials."""
    members = {
        "us": UpstreamProxy("us", listen_port=_pool_port("us")).start(),
        "de": UpstreamProxy(
            "de", credentials=f"pool-user:{POOL_SECRET}", listen_port=_pool_port("de")
        ).start(),
    }
    yield members
    for member in members.values():
        member.stop()


@pytest.fixture
def own() -> Iterator[tuple[UpstreamProxy, UpstreamProxy]]:
    """A tenant's own proxies: A open, B asking for credentials."""
    a, b = UpstreamProxy("A").start(), UpstreamProxy("B", credentials=f"alice:{SECRET}").start()
    yield a, b
    a.stop()
    b.stop()


def _logs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every log the stack's processes wrote (workers, Beat, the egress filter)."""
    base = tmp_path_factory.getbasetemp()
    return "".join(p.read_text(errors="replace") for p in base.glob("*/*.log"))


def _route_files() -> list[Path]:
    return list(Path(settings.EGRESS_ROUTES_DIR).glob("uid-*.json"))


def _released(session_id: str) -> bool:
    return BrowserSession.objects.filter(pk=session_id, browser_released_at__isnull=False).exists()


def test_use_advanced_proxy_goes_through_the_pool_and_its_bytes_are_charged_once(
    client, pool, pages_server, tmp_path_factory
):
    sdk = client.sdk()
    computer = sdk.computers.create(
        kind="browser", use_advanced_proxy=True, extra_body={"proxy_country": "de"}
    )
    page = f"{pages_server}/form.html"
    result = sdk.computers.navigate(computer.id, url=page)
    assert result.status == "success", result.error_message
    authority = urlsplit(page).netloc
    # Through the `de` member, with the pool's credentials; the `us` member heard nothing.
    assert pool["de"].tunnels and set(pool["de"].tunnels) == {authority}
    assert pool["de"].auth_seen[-1].startswith("Basic ") and pool["us"].tunnels == []
    # Stealth, as it is (docs/proxies.md): what a bot check reads first. Recorded, not hidden.
    assert sdk.computers.navigate(computer.id, url=f"{pages_server}/stealth.html").status == "success"
    html = sdk.computers.html(computer.id).result["html_content"]
    probe = json.loads(html.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0].replace("&quot;", '"'))
    assert probe["webdriver"] is True and "HeadlessChrome" in probe["userAgent"]
    # The route file is the filter's alone to read.
    (route,) = _route_files()
    assert route.stat().st_mode & 0o777 == 0o600

    shown = client.get(f"/v1/computers/{computer.id}")
    assert shown.json()["use_advanced_proxy"] is True and shown.json()["proxy_country"] == "de"
    assert client.delete(f"/v1/computers/{computer.id}").status_code == 200
    wait_until(lambda: _released(computer.id), timeout=20, message="the browser to be released")
    assert _route_files() == []

    # Metered: what the filter counted equals what the proxy carried, charged once per started MB.
    session = BrowserSession.objects.get(pk=computer.id)
    assert session.proxy_bytes == pool["de"].carried > 0
    charges = LedgerEntry.objects.filter(session_id=computer.id, kind=LedgerEntry.Kind.PROXY)
    assert charges.count() == 1
    assert -charges.get().amount == Price.objects.get(item="proxy_mb").credits * mb_started(
        session.proxy_bytes
    )
    # A stop task that runs again charges nothing more.
    from workers.services import _proxy_bytes_settle

    _proxy_bytes_settle(session)
    assert charges.count() == 1
    usage = client.get("/v1/usage").json()
    assert usage["proxy_mb"] == mb_started(session.proxy_bytes)
    assert usage["credits_by_kind"]["proxy"] == -charges.get().amount
    everything = shown.text + client.get("/v1/usage").text + _logs(tmp_path_factory)
    assert POOL_SECRET not in everything


def test_own_proxies_per_domain_rules_and_change_proxy_from_a_to_b(
    client, own, pages_server, tmp_path_factory
):
    a, b = own
    # A query of its own per visit: the same URL again could come from the browser's cache.
    page = f"{pages_server}/form.html"
    authority = urlsplit(page).netloc
    created = client.post(
        "/v1/computers",
        json={
            "proxies": [
                {
                    "server": f"http://127.0.0.1:{b.port}",
                    "username": "alice",
                    "password": SECRET,
                    "domain_pattern": "*.shop.test",
                },
                {"server": "direct"},
            ]
        },
    )
    assert created.status_code == 201, created.text
    session_id = created.json()["id"]
    assert created.json()["proxies"] == [
        {"server": f"http://127.0.0.1:{b.port}", "domain_pattern": "*.shop.test"},
        {"server": "direct", "domain_pattern": None},
    ]
    # 127.0.0.1 matches no pattern but the default: direct.
    navigated = client.post(f"/v1/computers/{session_id}/navigate", json={"url": page + "?direct"})
    assert navigated.json()["status"] == "success"
    assert a.tunnels == [] and b.tunnels == []

    # change-proxy (the Tzafon endpoint, root mount): everything through A from now on.
    changed = client.post(
        f"/computers/{session_id}/change-proxy", json={"proxy_url": f"http://127.0.0.1:{a.port}"}
    )
    assert changed.status_code == 200 and changed.json()["status"] == "success", changed.text
    assert (
        client.post(f"/v1/computers/{session_id}/navigate", json={"url": page + "?a"}).json()["status"]
        == "success"
    )
    assert a.tunnels and set(a.tunnels) == {authority} and b.tunnels == []
    through_a = len(a.tunnels)

    # execute {"type": "change_proxy"}, credentials in the URL: the same page, now through B.
    executed = client.post(
        f"/v1/computers/{session_id}/execute",
        json={"action": {"type": "change_proxy", "proxy_url": f"http://alice:{SECRET}@127.0.0.1:{b.port}"}},
    )
    assert executed.json()["status"] == "success", executed.text
    assert (
        client.post(f"/v1/computers/{session_id}/navigate", json={"url": page + "?b"}).json()["status"]
        == "success"
    )
    assert b.tunnels and set(b.tunnels) == {authority} and len(a.tunnels) == through_a
    assert set(b.auth_seen) == {"Basic YWxpY2U6czNjcmV0LXB3"}  # alice:s3cret-pw

    history = client.get(f"/v1/computers/{session_id}/actions")
    shown = client.get(f"/v1/computers/{session_id}")
    assert client.delete(f"/v1/computers/{session_id}").status_code == 200
    wait_until(lambda: _released(session_id), timeout=20, message="the browser to be released")
    # Billed as actions; a tenant's own proxies are not charged for bytes.
    kinds = list(LedgerEntry.objects.filter(session_id=session_id).values_list("kind", "action__type"))
    assert kinds.count(("action", "change_proxy")) == 2
    assert not any(kind == LedgerEntry.Kind.PROXY for kind, _ in kinds)
    everything = (
        created.text + changed.text + executed.text + history.text + shown.text + _logs(tmp_path_factory)
    )
    assert SECRET not in everything and "sealed" not in history.text
    assert os.listdir(settings.EGRESS_ROUTES_DIR) == []
