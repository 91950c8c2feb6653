"""The operators' admin: every page renders, and credits move only as ledger lines."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.urls import reverse

from accounts.services import account_create
from billing.models import Balance, LedgerEntry
from tests.support.rows import session_row


@pytest.fixture
def operator(plans, client):  # `client` is Django's test client here
    # force_login: django-axes' backend refuses an authenticate() without a request (the
    # console's tests cover signing in through the form).
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
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


def test_credits_are_not_editable_in_the_admin(operator):
    """A balance's only editable field is its credits.low threshold (webhooks): a posted credits
    value is ignored, credits move only through the ledger."""
    account = account_create(name="acme", plan_name="pro", credits=10)[0]
    response = operator.post(
        f"/admin/billing/balance/{account.pk}/change/", {"credits": "999999", "low_threshold": "5"}
    )
    assert response.status_code == 302
    balance = Balance.objects.get(account=account)
    assert balance.credits == 10 and balance.low_threshold == 5


def _staff(client, username: str, *perms: str):
    from django.contrib.auth.models import Permission

    user = User.objects.create_user(username, password="a-long-operator-passphrase", is_staff=True)
    for codename in ("view_account", "change_account", "view_ledgerentry", *perms):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def test_minting_credits_needs_the_add_credits_permission(plans, client):
    account = account_create(name="acme", plan_name="pro", credits=10)[0]
    clerk = _staff(client, "clerk")
    topup = reverse("admin:accounts_account_credits", args=[account.pk, "topup"])
    assert clerk.get(topup).status_code == 403
    assert clerk.post(topup, {"amount": "1000000", "reason": "me", "form_token": "x"}).status_code == 403
    assert Balance.objects.get(account=account).credits == 10
    page = clerk.get(reverse("admin:accounts_account_change", args=[account.pk]))
    assert page.status_code == 200 and topup.encode() not in page.content

    from django.test import Client

    treasurer = _staff(Client(), "treasurer", "add_credits")
    assert (
        topup.encode() in treasurer.get(reverse("admin:accounts_account_change", args=[account.pk])).content
    )
    assert treasurer.post(topup, {"amount": "5", "reason": "invoice 8", "form_token": "y"}).status_code == 302
    assert Balance.objects.get(account=account).credits == 15


def test_unknown_ids_in_admin_urls_are_not_server_errors(operator):
    assert operator.get(reverse("admin:accounts_account_credits", args=[987654, "topup"])).status_code == 404
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
        for pk in ("987654", "not-an-id"):
            response = operator.get(f"/admin/{model}/{quote(pk)}/change/")
            assert response.status_code in (302, 404), (model, pk, response.status_code)


def test_weak_operator_passwords_are_refused(operator):
    for weak in ("pw", "password123", "12345678901234"):
        response = operator.post(
            "/admin/auth/user/add/",
            {"username": "newop", "password1": weak, "password2": weak, "usable_password": "true"},
        )
        assert response.status_code == 200, weak  # the form again, with the validator's error
        assert not User.objects.filter(username="newop").exists()
    strong = "correct horse battery staple 42"
    response = operator.post(
        "/admin/auth/user/add/",
        {"username": "newop", "password1": strong, "password2": strong, "usable_password": "true"},
    )
    assert response.status_code == 302
    assert User.objects.filter(username="newop").exists()


def test_typed_text_is_not_shown_in_full_in_the_admin(operator):
    from django.utils import timezone

    from sessions.models import Action

    account = account_create(name="acme", plan_name="pro", credits=10)[0]
    session = session_row(account, status="terminated", browser_released_at=timezone.now())
    secret = "hunter2-Secret-Passw0rd"
    rows = [
        Action.objects.create(session=session, account=account, type=kind, params=params, status="succeeded")
        for kind, params in (
            ("type", {"text": secret}),
            ("point_and_type", {"x": 1, "y": 2, "text": secret}),
            ("step", {"action": "fill", "target": {"selector": "#password"}, "value": secret}),
            ("batch", {"actions": [{"type": "wait", "ms": 1}, {"type": "type", "text": secret}]}),
        )
    ]
    for row in rows:
        page = operator.get(f"/admin/browser_sessions/action/{quote(row.pk)}/change/")
        assert page.status_code == 200
        assert secret.encode() not in page.content, row.type
        assert f"hidden: {len(secret)} characters".encode() in page.content
    assert b"#password" in operator.get(f"/admin/browser_sessions/action/{quote(rows[2].pk)}/change/").content
