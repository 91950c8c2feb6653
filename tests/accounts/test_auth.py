from __future__ import annotations

import requests
from django.core.management import call_command
from requests.adapters import HTTPAdapter

from accounts.models import ApiKey
from accounts.services import api_key_revoke
from project.redis import get_redis


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


def test_ten_failures_lock_the_ip_out_even_with_a_valid_key(client):
    url = client.base_url + "/v1/computers"
    attacker = _from("127.0.0.2")
    try:
        for _ in range(10):
            assert attacker.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        locked = attacker.get(url, headers={"Authorization": f"Bearer {client.key}"})
        assert locked.status_code == 429
        assert locked.json()["code"] == "auth_locked_out"
        assert 500 < int(locked.headers["Retry-After"]) <= 600
        # Another address is not affected.
        assert (
            _from("127.0.0.4").get(url, headers={"Authorization": f"Bearer {client.key}"}).status_code == 200
        )
    finally:
        get_redis().delete("bf:authfail:127.0.0.2")
    assert attacker.get(url, headers={"Authorization": f"Bearer {client.key}"}).status_code == 200


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


def test_create_account_prints_a_working_key_last(plans, capsys, live_server, celery_worker_process):
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
