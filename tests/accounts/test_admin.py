"""The operators' admin: every page renders, and credits move only as ledger lines."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from accounts.services import account_create
from billing.models import Balance, LedgerEntry


@pytest.fixture
def operator(plans, client):  # `client` is Django's test client here
    User.objects.create_superuser("ops", "ops@example.com", "pw")
    client.login(username="ops", password="pw")
    return client


@pytest.fixture
def client():
    from django.test import Client

    return Client()


def test_every_admin_changelist_renders(operator):
    account_create(name="acme", plan_name="pro", credits=10)
    for model in [
        "accounts/account",
        "accounts/plan",
        "accounts/apikey",
        "billing/ledgerentry",
        "billing/balance",
        "billing/price",
        "browser_sessions/browsersession",
        "browser_sessions/action",
    ]:
        response = operator.get(f"/admin/{model}/")
        assert response.status_code == 200, model


def test_top_up_and_adjustment_write_ledger_lines_once(operator):
    account = account_create(name="acme", plan_name="pro", credits=10)[0]
    url = reverse("admin:accounts_account_credits", args=[account.pk, "topup"])
    assert operator.get(url).status_code == 200
    form = {"amount": "25", "reason": "invoice 7", "form_token": "t1"}
    assert operator.post(url, form).status_code == 302
    assert operator.post(url, form).status_code == 302  # a double submit posts once
    assert Balance.objects.get(account=account).credits == 35
    topup = LedgerEntry.objects.get(account=account, kind="topup")
    assert topup.amount == 25 and "invoice 7" in topup.reason

    adjust = reverse("admin:accounts_account_credits", args=[account.pk, "adjustment"])
    refused = operator.post(adjust, {"amount": "-100", "reason": "too much", "form_token": "t2"})
    assert refused.status_code == 200 and b"balance is 35" in refused.content
    assert (
        operator.post(adjust, {"amount": "-5", "reason": "goodwill", "form_token": "t3"}).status_code == 302
    )
    assert Balance.objects.get(account=account).credits == 30
    negative_topup = operator.post(url, {"amount": "-1", "reason": "x", "form_token": "t4"})
    assert negative_topup.status_code == 200
    assert Balance.objects.get(account=account).credits == 30


def test_balances_are_not_editable_in_the_admin(operator):
    account = account_create(name="acme", plan_name="pro", credits=10)[0]
    response = operator.post(f"/admin/billing/balance/{account.pk}/change/", {"credits": "999999"})
    assert response.status_code == 403
    assert Balance.objects.get(account=account).credits == 10
