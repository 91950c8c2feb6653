"""Operators: endpoints without secrets, and the credits.low threshold as the one editable
field of a balance (fast tier)."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote

from accounts.models import Plan
from accounts.plans import seed_plans
from accounts.services import account_create
from billing.models import Balance
from webhooks.models import Endpoint


@pytest.fixture
def account(db):
    seed_plans(Plan)
    return account_create(name="admin-hooks", plan_name="pro", credits=5000)[0]


def test_the_admin_never_shows_a_secret(admin_client, account):
    endpoint = Endpoint.objects.create(
        account=account, url="http://127.0.0.1:9/x", secret="whsec_c2VjcmV0c2VjcmV0"
    )
    response = admin_client.get(f"/admin/webhooks/endpoint/{quote(endpoint.pk)}/change/")
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    page = response.content.decode()
    assert endpoint.url in page and "whsec_" not in page
    listing = admin_client.get("/admin/webhooks/endpoint/").content.decode()
    assert endpoint.pk in listing and "whsec_" not in listing


def test_the_low_balance_threshold_is_editable_and_the_credits_are_not(admin_client, account):
    url = f"/admin/billing/balance/{account.pk}/change/"
    response = admin_client.post(url, {"low_threshold": 250, "credits": 10**9})
    assert response.status_code == 302, response.content.decode()[:2000]
    balance = Balance.objects.get(account=account)
    assert balance.low_threshold == 250 and balance.credits == 5000
