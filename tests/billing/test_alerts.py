"""Low-balance alerts: one setting (absolute or percent of the last top-up) for the credits.low
webhook and the owners' email; an email once per crossing and again at 0; a disabled webhook
endpoint emails the owners once."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import ApiKey
from accounts.services import account_create, member_add
from billing.alerts import low_threshold_get, low_threshold_set
from billing.ledger import ledger_post
from billing.models import LedgerEntry
from tests.support.rows import session_row
from webhooks import dispatch
from webhooks.delivery import Outcome
from webhooks.models import Event
from webhooks.services import delivery_claim, delivery_record, endpoint_create, event_emit
from workers.webhook_tasks import owners_notify


@pytest.fixture
def sent_inline(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any]]]:
    """Tasks sent by name run here at once (no worker in the fast tier): the email task sends."""
    sent: list[tuple[str, list[Any]]] = []
    real_send = dispatch.app.send_task

    def send_task(name: str, args: list[Any] | None = None, **kwargs: Any) -> Any:
        sent.append((name, list(args or [])))
        if name == dispatch.OWNERS_NOTIFY:
            return owners_notify(*(args or []))
        return real_send(name, args=args, **kwargs)

    monkeypatch.setattr(dispatch.app, "send_task", send_task)
    return sent


def _account(credits: int) -> Any:
    account, _ = account_create(name="alerts", plan_name="pro", credits=credits)
    member_add(account=account, email="owner@alerts.test", role="owner", password="x" * 16)
    member_add(account=account, email="second-owner@alerts.test", role="owner", password="x" * 16)
    member_add(account=account, email="member@alerts.test", role="member", password="x" * 16)
    return account


def _charge(account: Any, amount: int, key: str) -> None:
    ledger_post(account_id=account.pk, amount=-amount, kind="action", idempotency_key=key)


@pytest.mark.django_db(transaction=True)
def test_an_email_once_per_crossing_and_again_at_zero(plans, sent_inline, mailoutbox):
    account = _account(100)
    # Events are written for accounts with an endpoint that wants them.
    endpoint_create(account_id=account.pk, max_endpoints=10, url="https://hooks.example.com/x", events=["*"])
    low_threshold_set(account_id=account.pk, credits=50)
    _charge(account, 30, "c1")  # 70: above
    assert mailoutbox == []
    _charge(account, 30, "c2")  # 40: crossed
    assert len(mailoutbox) == 1
    assert sorted(mailoutbox[0].to) == ["owner@alerts.test", "second-owner@alerts.test"]  # owners only
    assert "40 credits" in mailoutbox[0].subject
    _charge(account, 10, "c3")  # 30: still below, no new crossing
    _charge(account, 10, "c2")  # a replayed charge: nothing moves, nothing is sent
    assert len(mailoutbox) == 1
    ledger_post(account_id=account.pk, amount=100, kind="topup", idempotency_key="t1")  # 130
    _charge(account, 90, "c4")  # 40: crossed again
    assert len(mailoutbox) == 2
    _charge(account, 40, "c5")  # 0: empty
    assert len(mailoutbox) == 3 and "empty" in mailoutbox[2].subject
    types = list(
        Event.objects.filter(account_id=account.pk).order_by("created_at").values_list("type", flat=True)
    )
    assert types == ["credits.low", "credits.low", "credits.exhausted"]


@pytest.mark.django_db(transaction=True)
def test_an_action_charge_that_crosses_the_threshold_alerts_too(make_api_client, sent_inline, mailoutbox):
    client = make_api_client(plan="pro", credits=10)
    member_add(account=client.account, email="owner@acc.test", role="owner", password="x" * 16)
    low_threshold_set(account_id=client.account.pk, credits=9)
    endpoint_create(
        account_id=client.account.pk, max_endpoints=10, url="https://hooks.example.com/x", events=["*"]
    )
    session = session_row(client.account, status="ready")
    accepted = client.post(f"/v1/computers/{session.pk}/html?wait=false", {})  # 10 -> 8
    assert accepted.status_code == 202, accepted.text
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["owner@acc.test"]
    event = Event.objects.get(account_id=client.account.pk, type="credits.low")
    assert event.payload["data"] == {"account_id": client.account.pk, "balance": 8, "threshold": 9}
    assert client.post(f"/v1/computers/{session.pk}/html?wait=false", {}).status_code == 202  # 6
    assert len(mailoutbox) == 1


def test_a_percent_threshold_follows_the_last_topup(db, plans):
    account = _account(0)
    low_threshold_set(account_id=account.pk, percent=20)
    assert low_threshold_get(account_id=account.pk).credits == 0  # no top-up yet
    ledger_post(account_id=account.pk, amount=5000, kind="topup", idempotency_key="t1")
    assert low_threshold_get(account_id=account.pk).credits == 1000
    ledger_post(account_id=account.pk, amount=200, kind="topup", idempotency_key="t2")
    got = low_threshold_get(account_id=account.pk)
    assert (got.credits, got.percent, got.last_topup) == (40, 20, 200)
    low_threshold_set(account_id=account.pk, credits=700)  # absolute again: top-ups leave it alone
    ledger_post(account_id=account.pk, amount=5000, kind="topup", idempotency_key="t3")
    assert low_threshold_get(account_id=account.pk).credits == 700


def test_the_tenant_api_sets_the_same_threshold(api_client):
    url = "/v1/account/low-balance-alert"
    assert api_client.get(url).json() == {"threshold": 1000, "percent": None, "last_topup": 0}
    set_pct = api_client.request("PUT", url, json={"percent": 20})
    assert set_pct.status_code == 200 and set_pct.json()["percent"] == 20
    for bad in ({"credits": 5, "percent": 5}, {}, {"percent": 0}, {"credits": -1}, {"percent": "x"}):
        refused = api_client.request("PUT", url, json=bad)
        assert refused.status_code == 400, (bad, refused.text)
    assert low_threshold_get(account_id=api_client.account.pk).percent == 20  # unchanged
    assert api_client.request("PUT", url, json={"credits": 250}).json() == {
        "threshold": 250,
        "percent": None,
        "last_topup": 0,
    }


@pytest.mark.django_db(transaction=True)
def test_an_endpoint_disabled_by_410_emails_the_owners_once(plans, sent_inline, mailoutbox):
    account = _account(100)
    endpoint, _secret = endpoint_create(
        account_id=account.pk, max_endpoints=10, url="https://hooks.example.com/x", events=["*"]
    )
    for n in range(2):
        event_emit(account_id=account.pk, type="credits.low", data={"n": n}, idempotency_key=f"e{n}")
    deliveries = list(endpoint.deliveries.order_by("pk"))
    for delivery in deliveries:
        attempt = delivery_claim(delivery_id=delivery.pk)
        if attempt is None:
            continue  # the first 410 failed the rest
        delivery_record(attempt=attempt, outcome=Outcome(False, 410, "HTTP 410", False, None, 5, "HTTP 410"))
    endpoint.refresh_from_db()
    assert endpoint.enabled is False
    mails = [m for m in mailoutbox if "disabled" in m.subject]
    assert len(mails) == 1 and endpoint.url in mails[0].body
    assert sorted(mails[0].to) == ["owner@alerts.test", "second-owner@alerts.test"]


def test_key_is_recorded_on_refunds_like_on_charges(db, plans):
    account, _ = account_create(name="k", plan_name="pro", credits=10)
    key = ApiKey.objects.get(account=account)
    ledger_post(account_id=account.pk, amount=-3, kind="action", idempotency_key="a", api_key_id=key.pk)
    ledger_post(account_id=account.pk, amount=3, kind="refund", idempotency_key="r", api_key_id=key.pk)
    assert set(LedgerEntry.objects.filter(api_key=key).values_list("idempotency_key", flat=True)) == {
        "a",
        "r",
    }
