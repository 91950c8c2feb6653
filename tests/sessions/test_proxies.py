"""Upstream proxies, the web's side (fast tier): what a create or change-proxy may name, what is
refused before anything is written, what is sealed and never shown, what bytes cost."""

from __future__ import annotations

import json

import pytest

from billing.models import Balance, LedgerEntry, Price
from sessions import proxies, services
from sessions.models import Action, BrowserSession
from sessions.proxy_billing import MB, session_proxy_bill
from tests.support.rows import session_row

SECRET = "pw-s3cret"


def _written(client) -> tuple[int, int, int, int]:
    account = client.account
    return (
        BrowserSession.objects.filter(account=account).count(),
        Action.objects.filter(account=account).count(),
        LedgerEntry.objects.filter(account=account).count(),
        Balance.objects.get(account=account).credits,
    )


def _refused(client, path: str, body: dict, code: str) -> None:
    before = _written(client)
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code, response.text
    assert SECRET not in response.text
    assert _written(client) == before


@pytest.mark.parametrize(
    "server",
    [
        "http://127.0.0.2:3128",  # a forbidden address (tests model them on 127.0.0.2 and up)
        f"http://user:{SECRET}@127.0.0.2:3128",
        "http://10.0.0.5:8080",
        "http://169.254.169.254:80",
        "http://[::1]:3128",
        f"socks5://user:{SECRET}@127.0.0.2:1080",
    ],
)
def test_a_proxy_on_a_forbidden_address_is_400_blocked_address(api_client, server):
    body = {"proxies": [{"server": server, "username": "user", "password": SECRET}]}
    _refused(api_client, "/v1/computers", body, "blocked_address")
    session = session_row(api_client.account, status="ready")
    for path in (f"/v1/computers/{session.pk}/change-proxy", f"/computers/{session.pk}/change-proxy"):
        _refused(api_client, path, {"proxy_url": server}, "blocked_address")
    _refused(
        api_client,
        f"/v1/computers/{session.pk}/execute",
        {"action": {"type": "change_proxy", "proxy_url": server}},
        "blocked_address",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"proxies": [{"server": f"socks4://u:{SECRET}@127.0.0.1:1080"}]}, "invalid_proxy"),
        ({"proxies": [{"server": f"ftp://u:{SECRET}@127.0.0.1:21"}]}, "invalid_proxy"),
        ({"proxies": [{"server": f"http://u:{SECRET}@127.0.0.1:99999"}]}, "invalid_proxy"),
        ({"proxies": [{"server": f"http://u:{SECRET}@127.0.0.1:3128/path"}]}, "invalid_proxy"),
        ({"proxies": [{"server": "http://127.0.0.1:3128", "domain_pattern": "a b/c"}]}, "invalid_proxy"),
        ({"proxies": [{"server": "http://127.0.0.1:3128", "port": 1}]}, "invalid_proxy"),
        ({"proxies": [{"server": "http://127.0.0.1:3128", "password": 5}]}, "invalid_proxy"),
        ({"proxies": [{"server": "http://127.0.0.1:3128", "password": f"a\r\n{SECRET}"}]}, "invalid_proxy"),
        ({"proxies": {"server": "http://127.0.0.1:3128"}}, "invalid_proxy"),
        ({"proxies": []}, "invalid_proxy"),
        ({"proxies": [{"server": "direct"}] * 21}, "invalid_proxy"),
        ({"proxies": [{"server": "direct"}], "use_advanced_proxy": True}, "invalid_proxy"),
        ({"proxy_country": "de"}, "invalid_proxy"),
        ({"use_advanced_proxy": True, "proxy_country": "fr"}, "proxy_country_unavailable"),
    ],
)
def test_malformed_proxy_settings_are_400_and_write_nothing(api_client, body, code):
    _refused(api_client, "/v1/computers", body, code)


def test_malformed_change_proxy_is_400_and_writes_nothing(api_client):
    session = session_row(api_client.account, status="ready")
    for proxy_url in (f"socks4://u:{SECRET}@127.0.0.1:1", "http://", f"http://u:{SECRET}@h:1/p"):
        _refused(
            api_client, f"/v1/computers/{session.pk}/change-proxy", {"proxy_url": proxy_url}, "invalid_proxy"
        )


@pytest.mark.parametrize(
    ("change", "body"),
    [
        ({"BROWSER_BACKEND": "grid"}, {"proxies": [{"server": "http://127.0.0.1:3128"}]}),
        ({"EGRESS_ROUTES_DIR": ""}, {"proxies": [{"server": "http://127.0.0.1:3128"}]}),
        ({"BROWSER_SANDBOX": "off"}, {"use_advanced_proxy": True}),
        ({"ADVANCED_PROXY_URLS": []}, {"use_advanced_proxy": True}),
    ],
)
def test_a_proxy_the_server_cannot_honour_is_refused_never_sent_direct(api_client, settings, change, body):
    for name, value in change.items():
        setattr(settings, name, value)
    _refused(api_client, "/v1/computers", body, "proxy_unavailable")


def test_the_rules_are_sealed_on_the_session_and_echoed_without_credentials(db, plans):
    from accounts.services import account_create

    account, _ = account_create(name="t", plan_name="pro", credits=1000)
    rules = proxies.proxies_check(
        [
            {"server": f"http://alice:{SECRET}@127.0.0.1:3128", "domain_pattern": "*.shop.test"},
            {"server": "direct"},
        ]
    )
    session = services.session_create(account=account, spec=services.SessionSpec(proxies=rules))
    session.refresh_from_db()
    assert SECRET.encode() not in bytes(session.proxy_config)
    assert SECRET not in json.dumps(session.options)
    assert session.options["proxies"] == [
        {"server": "http://127.0.0.1:3128", "domain_pattern": "*.shop.test"},
        {"server": "direct", "domain_pattern": None},
    ]
    config = proxies.proxy_config_open(session_id=session.pk, sealed=session.proxy_config)
    document = proxies.route_document(session_id=session.pk, config=config)
    assert document["rules"][0] == {
        "server": "http://127.0.0.1:3128",
        "username": "alice",
        "password": SECRET,
        "domain_pattern": "*.shop.test",
    }
    assert document["meter"] == session.pk and not any(rule.get("metered") for rule in document["rules"])
    # Bound to its session: copied onto another, it does not open.
    with pytest.raises(Exception, match="does not open"):
        proxies.proxy_config_open(session_id="comp_other", sealed=session.proxy_config)


def test_the_pool_member_is_sticky_by_session_and_picked_by_tag(settings):
    settings.ADVANCED_PROXY_URLS = [
        "http://127.0.0.1:1001",
        f"de=http://u:{SECRET}@127.0.0.1:1002",
        "de=http://127.0.0.1:1003",
    ]
    chosen = {proxies.pool_choose(session_id=f"comp_{n}").name for n in range(50)}
    assert chosen == {"pool-1", "pool-de-2", "pool-de-3"}
    assert {proxies.pool_choose(session_id=f"comp_{n}", country="DE").tag for n in range(20)} == {"de"}
    assert proxies.pool_choose(session_id="comp_x") == proxies.pool_choose(session_id="comp_x")
    member = next(m for m in proxies.advanced_pool() if m.name == "pool-de-2")
    assert SECRET not in repr(member)
    document = proxies.route_document(session_id="comp_x", config={"pool": "pool-de-2", "country": "de"})
    assert document["rules"] == [
        {
            "server": "http://127.0.0.1:1002",
            "username": "u",
            "password": SECRET,
            "name": "pool-de-2",
            "metered": True,
            # Out of rotation, the other `de` member carries its connections.
            "fallbacks": [
                {"server": "http://127.0.0.1:1003", "username": "", "password": "", "name": "pool-de-3"}
            ],
        }
    ]
    anywhere = proxies.route_document(session_id="comp_x", config={"pool": "pool-1", "country": ""})
    assert {f["name"] for f in anywhere["rules"][0]["fallbacks"]} == {"pool-de-2", "pool-de-3"}


def test_pool_bytes_are_charged_per_started_mb_once(db, plans):
    from accounts.services import account_create

    account, _ = account_create(name="t", plan_name="pro", credits=1000)
    session = session_row(account, status="terminated")
    price = Price.objects.get(item="proxy_mb").credits
    charges = LedgerEntry.objects.filter(session=session, kind=LedgerEntry.Kind.PROXY)
    assert session_proxy_bill(session_id=session.pk, total_bytes=1_500_000)
    assert session_proxy_bill(session_id=session.pk, total_bytes=1_500_000)  # the same total again
    assert [-c.amount for c in charges] == [2 * price]
    assert session_proxy_bill(session_id=session.pk, total_bytes=2 * MB)  # still within 2 MB
    assert session_proxy_bill(session_id=session.pk, total_bytes=3 * MB + 1)
    assert sorted(-c.amount for c in charges.all()) == [2 * price, 2 * price]
    session.refresh_from_db()
    assert (session.proxy_bytes, session.proxy_billed_mb) == (3 * MB + 1, 4)
    # The ledger equals the balance.
    ledger = LedgerEntry.objects.filter(account=account).values_list("amount", flat=True)
    assert Balance.objects.get(account=account).credits == sum(ledger)


def test_pool_bytes_are_charged_as_they_go_and_a_session_that_cannot_pay_ends(db, plans):
    """The reconcile's pass (workers.services.proxy_bytes_bill) over the filter's counts."""
    from accounts.services import account_create
    from project.redis import get_redis
    from workers.egress.metering import meter_key
    from workers.services import proxy_bytes_bill

    account, _ = account_create(name="t", plan_name="pro", credits=100)
    sealed = proxies.proxy_config_seal(session_id="comp_x", config={"pool": "pool-us-1"})
    live = session_row(account, status="running", proxy_config=sealed, options={"use_advanced_proxy": True})
    own = session_row(account, status="running", proxy_config=sealed, options={"proxies": []})
    redis = get_redis()
    try:
        redis.hset(meter_key(live.pk), mapping={"bytes": 2 * MB, "open": 1})
        redis.hset(meter_key(own.pk), mapping={"bytes": 5 * MB, "open": 1})
        assert proxy_bytes_bill()["proxy_charged"] == 1
        assert proxy_bytes_bill()["proxy_charged"] == 0  # nothing new: nothing charged
        price = Price.objects.get(item="proxy_mb").credits
        assert [-e.amount for e in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PROXY)] == [2 * price]
        # A tenant's own proxies are not charged for bytes (not even counted as pool bytes).
        assert not LedgerEntry.objects.filter(session=own, kind=LedgerEntry.Kind.PROXY).exists()
        redis.hset(meter_key(live.pk), "bytes", 10_000 * MB)  # far beyond the balance
        assert proxy_bytes_bill() == {"proxy_charged": 1, "proxy_exhausted": 1}
        live.refresh_from_db()
        assert (live.status, live.ended_reason, live.proxy_billed_mb) == (
            "terminated",
            "credits_exhausted",
            2,
        )
    finally:
        redis.delete(meter_key(live.pk), meter_key(own.pk))
