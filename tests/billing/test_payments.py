"""Adding credits through Stripe Checkout: the webhook verifies Stripe's signature scheme and
credits once per payment, whatever is replayed. Event bodies and signatures are built here;
Stripe's API is a loopback stand-in; nothing reaches the network."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from django.test import Client as PageClient

from accounts.services import account_create
from billing.models import Balance, LedgerEntry, TopupPayment
from billing.payments import payment_provider
from tests.support.fake_stripe import fake_stripe_fixture  # noqa: F401  (the fixture fake_stripe)

SECRET = "whsec_test_secret"
URL = "/billing/stripe/webhook"


@pytest.fixture
def stripe_on(settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_123"
    settings.STRIPE_WEBHOOK_SECRET = SECRET


def _event(
    account_id: int,
    *,
    event_id: str = "evt_1",
    session_id: str = "cs_test_1",
    credits: int = 5000,
    type: str = "checkout.session.completed",
    paid: bool = True,
) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": type,
            "data": {
                "object": {
                    "id": session_id,
                    "object": "checkout.session",
                    "payment_status": "paid" if paid else "unpaid",
                    "client_reference_id": str(account_id),
                    "metadata": {"account_id": str(account_id), "credits": str(credits)},
                }
            },
        }
    ).encode()


def _signed(payload: bytes, *, secret: str = SECRET, at: int | None = None) -> str:
    """Stripe's documented scheme: t=<timestamp>,v1=<hex HMAC-SHA256 of "<t>.<payload>">."""
    t = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def _post(payload: bytes, signature: str | None) -> Any:
    headers = {} if signature is None else {"HTTP_STRIPE_SIGNATURE": signature}
    return PageClient().post(URL, data=payload, content_type="application/json", **headers)


def _credits(account: Any) -> int:
    return Balance.objects.get(account=account).credits


def test_a_verified_payment_credits_once_and_a_replay_credits_nothing(db, plans, stripe_on):
    account, _ = account_create(name="buyer", plan_name="free", credits=100)
    payload = _event(account.pk)
    first = _post(payload, _signed(payload))
    assert first.status_code == 200 and first.json() == {"received": True, "credited": True}
    assert _credits(account) == 5100
    replay = _post(payload, _signed(payload))  # Stripe redelivers the same event
    assert replay.status_code == 200 and replay.json()["credited"] is False
    # Another event about the same payment (async_payment_succeeded after completed): nothing more.
    again = _event(account.pk, event_id="evt_2", type="checkout.session.async_payment_succeeded")
    assert _post(again, _signed(again)).json()["credited"] is False
    assert _credits(account) == 5100
    topups = LedgerEntry.objects.filter(account=account, kind="topup")
    assert topups.count() == 1 and topups.get().amount == 5000
    assert TopupPayment.objects.get(provider_event_id="evt_1").ledger_entry == topups.get()


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "t=123,v1=abc",
        "garbage",
        "wrong secret",
        "old timestamp",
        "tampered body",
    ],
)
def test_a_bad_signature_is_400_and_credits_nothing(db, plans, stripe_on, signature):
    account, _ = account_create(name="victim", plan_name="free", credits=100)
    payload = _event(account.pk, credits=1_000_000)
    if signature == "wrong secret":
        signature = _signed(payload, secret="whsec_other")
    elif signature == "old timestamp":
        signature = _signed(payload, at=int(time.time()) - 3600)
    elif signature == "tampered body":
        signature = _signed(_event(account.pk, credits=1000))
    response = _post(payload, signature)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_signature"
    assert _credits(account) == 100
    assert not TopupPayment.objects.exists() and not LedgerEntry.objects.filter(kind="topup").exists()


def test_verified_events_that_confirm_no_payment_credit_nothing(db, plans, stripe_on):
    account, _ = account_create(name="buyer", plan_name="free", credits=100)
    for payload in (
        _event(account.pk, paid=False),
        _event(account.pk, event_id="evt_9", type="charge.refunded"),
    ):
        response = _post(payload, _signed(payload))
        assert response.status_code == 200 and response.json()["credited"] is False
    assert _credits(account) == 100


def test_without_stripe_settings_the_webhook_is_not_there(db, plans, settings):
    settings.STRIPE_SECRET_KEY = ""
    payload = _event(1)
    assert _post(payload, _signed(payload)).status_code == 404


def test_a_checkout_session_is_created_with_the_account_and_the_credits(db, plans, stripe_on, fake_stripe):
    provider = payment_provider()
    assert provider is not None
    checkout = provider.checkout_create(
        account_id=7, credits=25_000, success_url="http://x/ok", cancel_url="http://x/no", email="o@x.test"
    )
    assert checkout.url.startswith("https://checkout.stripe.com/") and checkout.reference == "cs_test_42"
    (request,) = fake_stripe
    form = request["form"]
    assert request["path"] == "/v1/checkout/sessions" and request["auth"] == "Bearer sk_test_123"
    assert form["metadata[account_id]"] == ["7"] and form["metadata[credits]"] == ["25000"]
    assert form["line_items[0][quantity]"] == ["25"]
    assert form["line_items[0][price_data][unit_amount]"] == ["100"]
    assert form["mode"] == ["payment"] and form["customer_email"] == ["o@x.test"]
