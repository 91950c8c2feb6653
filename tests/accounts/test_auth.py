from __future__ import annotations

from typing import Any

import pytest
import requests
from django.core.management import call_command
from requests.adapters import HTTPAdapter

from accounts.models import ApiKey
from accounts.services import api_key_revoke
from project.redis import get_redis


@pytest.fixture
def client(api_client: Any) -> Any:
    """The web answers all of these by itself: no worker (the fast tier)."""
    return api_client


class _FromAddress(HTTPAdapter):
    """Connect from another loopback address, to be another client IP."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def _from(address: str) -> requests.Session:
    http = requests.Session()
    http.mount("http://", _FromAddress(address))
    return http


def test_missing_invalid_and_revoked_keys_are_401(client):
    url = client.base_url + "/v1/computers"
    http = _from("127.0.0.3")
    try:
        assert http.get(url).status_code == 401
        bad = http.get(url, headers={"Authorization": "Bearer bf_not-a-key"})
        assert bad.status_code == 401
        assert bad.json()["code"] == "unauthenticated"
        assert http.get(url, headers={"Authorization": f"Basic {client.key}"}).status_code == 401
        assert http.get(url, headers={"Authorization": f"Bearer {client.key}"}).status_code == 200
        api_key_revoke(api_key=ApiKey.objects.get(account=client.account))
        assert http.get(url, headers={"Authorization": f"Bearer {client.key}"}).status_code == 401
    finally:
        get_redis().delete("bf:authfail:127.0.0.3")


def test_ten_failures_lock_the_ip_out_for_bad_keys_but_never_refuse_a_valid_key(client):
    # DESIGN.md had the lockout refuse valid keys too; that let anyone who can fail in a tenant's
    # name (a shared or spoofed address) lock the tenant out. See docs/decisions.md.
    url = client.base_url + "/v1/computers"
    attacker = _from("127.0.0.2")
    try:
        for _ in range(10):
            assert attacker.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        locked = attacker.get(url, headers={"Authorization": "Bearer wrong-again"})
        assert locked.status_code == 429
        assert locked.json()["code"] == "auth_locked_out"
        assert 500 < int(locked.headers["Retry-After"]) <= 600
        assert attacker.get(url, headers={"Authorization": f"Basic {client.key}"}).status_code == 429
        # The right key from the same address works while the address is locked.
        assert attacker.get(url, headers={"Authorization": f"Bearer {client.key}"}).status_code == 200
        # No credentials at all is not a failed attempt: still the plain 401.
        assert attacker.get(url).status_code == 401
        # Another address is not affected.
        assert _from("127.0.0.4").get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        get_redis().delete("bf:authfail:127.0.0.2", "bf:authfail:127.0.0.4")


def test_requests_without_credentials_do_not_count_as_failures(client):
    url = client.base_url + "/v1/computers"
    http = _from("127.0.0.6")
    try:
        for _ in range(15):
            assert http.get(url).status_code == 401
            assert http.get(url, headers={"Authorization": ""}).status_code == 401
        assert http.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        get_redis().delete("bf:authfail:127.0.0.6")


def test_the_client_address_is_the_one_the_trusted_proxy_appended(client, settings):
    """Behind one proxy, the rightmost X-Forwarded-For entry; what the client wrote is ignored."""
    settings.TRUSTED_PROXY_COUNT = 1
    url = client.base_url + "/v1/computers"
    proxy = _from("127.0.0.7")
    try:
        # Rotating a forged leftmost entry does not spread the failures over many addresses.
        for n in range(10):
            forged = {"Authorization": "Bearer wrong", "X-Forwarded-For": f"198.51.100.{n}, 127.0.0.8"}
            assert proxy.get(url, headers=forged).status_code == 401
        rotated = {"Authorization": "Bearer wrong", "X-Forwarded-For": "198.51.100.99, 127.0.0.8"}
        assert proxy.get(url, headers=rotated).status_code == 429
        # The forged addresses themselves were never locked out: the victim whose address was
        # written in the header is not affected.
        victim = {"Authorization": "Bearer wrong", "X-Forwarded-For": "198.51.100.1"}
        assert proxy.get(url, headers=victim).status_code == 401
        # Two proxies: the second entry from the right.
        settings.TRUSTED_PROXY_COUNT = 2
        two = {"Authorization": "Bearer wrong", "X-Forwarded-For": "127.0.0.8, 127.0.0.9"}
        assert proxy.get(url, headers=two).status_code == 429
    finally:
        get_redis().delete(
            *(f"bf:authfail:{a}" for a in ("127.0.0.7", "127.0.0.8", "127.0.0.9", "198.51.100.1"))
        )


def test_ipv6_clients_are_counted_per_64(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    url = client.base_url + "/v1/computers"
    proxy = _from("127.0.0.7")
    try:
        for n in range(10):
            rotating = {"Authorization": "Bearer wrong", "X-Forwarded-For": f"2001:db8:1:2::{n + 1:x}"}
            assert proxy.get(url, headers=rotating).status_code == 401
        same_64 = {"Authorization": "Bearer wrong", "X-Forwarded-For": "2001:db8:1:2:ffff:ffff:ffff:ffff"}
        assert proxy.get(url, headers=same_64).status_code == 429
        other_64 = {"Authorization": "Bearer wrong", "X-Forwarded-For": "2001:db8:1:3::1"}
        assert proxy.get(url, headers=other_64).status_code == 401
    finally:
        get_redis().delete("bf:authfail:2001:db8:1:2::/64", "bf:authfail:2001:db8:1:3::/64")


def test_nine_failures_do_not_lock_out(client):
    url = client.base_url + "/v1/computers"
    http = _from("127.0.0.5")
    try:
        for _ in range(9):
            http.get(url, headers={"Authorization": "Bearer wrong"})
        assert http.get(url, headers={"Authorization": f"Bearer {client.key}"}).status_code == 200
    finally:
        get_redis().delete("bf:authfail:127.0.0.5")


def test_key_is_stored_only_as_hash_with_visible_prefix(client):
    key = ApiKey.objects.get(account=client.account)
    assert client.key not in (key.hashed_key, key.prefix)
    assert client.key.startswith(key.prefix) and len(key.prefix) < 16


def test_create_account_prints_a_working_key_last(plans, capsys, live_server):
    call_command("create_account", "acme", "--plan", "pro", "--credits", "50")
    raw_key = capsys.readouterr().out.strip().splitlines()[-1]
    response = requests.get(
        live_server.url + "/v1/computers", headers={"Authorization": f"Bearer {raw_key}"}, timeout=10
    )
    assert response.status_code == 200
    key = ApiKey.objects.get(prefix=raw_key[:11])
    assert key.account.plan.name == "pro"
    assert key.account.balance.credits == 50


def test_a_host_not_allowed_is_a_json_400(client):
    reply = requests.get(
        client.base_url + "/v1/computers",
        headers={"Host": "evil.example", "Authorization": f"Bearer {client.key}"},
        timeout=10,
    )
    assert reply.status_code == 400
    assert reply.json()["code"] == "bad_request" and reply.json()["status"] == "error"
