"""The API keys and Billing pages: keys shown once and revoked at once, spend caps, prices from
the accept's table, the ledger and its CSV, the alert setting, adding credits; another
account's ids are 404."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Any

import pytest
import requests

from accounts.models import ApiKey
from billing.alerts import low_threshold_get
from billing.ledger import ledger_post
from billing.models import LedgerEntry, Price
from billing.spend_caps import key_spend_get
from console.views import billing as billing_views
from tests.console.conftest import Tenant
from tests.support.fake_stripe import fake_stripe_fixture  # noqa: F401  (the fixture fake_stripe)


def _new_key(response: Any) -> str:
    match = re.search(rb"data-raw-key>(bf_[^<]+)<", response.content)
    assert match, response.content[:2000]
    return match.group(1).decode()


def test_an_owner_creates_a_named_key_shown_once(tenant: Tenant) -> None:
    pages = tenant.pages()
    created = pages.post("/console/keys/create/", {"name": "scraper"})
    assert created.status_code == 201
    raw = _new_key(created)
    key = ApiKey.objects.get(account=tenant.account, name="scraper")
    assert raw.startswith(key.prefix) and key.hashed_key not in created.content.decode()
    assert b"console/keys.js" in created.content and b"<script>" not in created.content  # no inline code
    listed = pages.get("/console/keys/")
    assert listed.status_code == 200
    assert key.prefix.encode() in listed.content and raw.encode() not in listed.content  # never again


def test_a_member_sees_keys_but_cannot_create_revoke_or_cap(tenant: Tenant) -> None:
    pages = tenant.pages(as_owner=False)
    assert pages.get("/console/keys/").status_code == 200
    key = ApiKey.objects.get(account=tenant.account)
    assert pages.post("/console/keys/create/", {"name": "x"}).status_code == 404
    assert pages.post(f"/console/keys/{key.pk}/revoke/").status_code == 404
    assert pages.post(f"/console/keys/{key.pk}/cap/", {"cap": "5"}).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None and key_spend_get(api_key_id=key.pk).cap is None


def test_another_accounts_key_is_404_and_untouched(tenant: Tenant, stranger: Tenant) -> None:
    theirs = ApiKey.objects.get(account=stranger.account)
    pages = tenant.pages()
    assert pages.post(f"/console/keys/{theirs.pk}/revoke/").status_code == 404
    assert pages.post(f"/console/keys/{theirs.pk}/cap/", {"cap": "1"}).status_code == 404
    assert pages.post("/console/keys/99999999/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None and key_spend_get(api_key_id=theirs.pk).cap is None
    assert theirs.prefix.encode() not in pages.get("/console/keys/").content


def test_a_key_revoked_in_the_console_is_refused_by_the_api_at_once(tenant: Tenant, live_server: Any) -> None:
    pages = tenant.pages()
    raw = _new_key(pages.post("/console/keys/create/", {"name": "short-lived"}))
    headers = {"Authorization": f"Bearer {raw}"}
    assert requests.get(f"{live_server.url}/v1/account", headers=headers, timeout=10).status_code == 200
    key = ApiKey.objects.get(account=tenant.account, name="short-lived")
    revoked = pages.post(f"/console/keys/{key.pk}/revoke/")
    assert revoked.status_code == 302
    # The very next request: authentication reads the key's row every time (no cache).
    refused = requests.get(f"{live_server.url}/v1/account", headers=headers, timeout=10)
    assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
    other = requests.get(
        f"{live_server.url}/v1/account", headers={"Authorization": f"Bearer {tenant.raw_key}"}, timeout=10
    )
    assert other.status_code == 200


def test_the_spend_cap_is_set_and_removed_in_the_console(tenant: Tenant) -> None:
    pages = tenant.pages()
    key = ApiKey.objects.get(account=tenant.account)
    assert pages.post(f"/console/keys/{key.pk}/cap/", {"cap": "250"}).status_code == 302
    assert key_spend_get(api_key_id=key.pk).cap == 250
    assert b'value="250"' in pages.get("/console/keys/").content
    for bad in ("-1", "abc", "1e9", "99999999999999"):
        assert pages.post(f"/console/keys/{key.pk}/cap/", {"cap": bad}).status_code == 400, bad
    assert key_spend_get(api_key_id=key.pk).cap == 250
    assert pages.post(f"/console/keys/{key.pk}/cap/", {"cap": ""}).status_code == 302
    assert key_spend_get(api_key_id=key.pk).cap is None


def test_the_billing_page_shows_the_plan_limits_and_every_price_the_accept_uses(tenant: Tenant) -> None:
    Price.objects.filter(item="scrape").update(credits=17)  # an operator's edit shows at once
    page = tenant.pages(as_owner=False).get("/console/billing/")
    assert page.status_code == 200
    html = page.content.decode()
    for price in Price.objects.all():
        row = re.search(rf'data-item="{price.item}">.*?<td class="num">(\d+)</td>', html, re.S)
        assert row and int(row.group(1)) == price.credits, price.item
    assert 'data-item="scrape"' in html and ">17<" in html
    plan = tenant.account.plan
    assert "Concurrent sessions" in html and f">{plan.max_concurrent_sessions}<" in html
    assert f"{plan.max_lifetime_seconds // 60} minutes" in html and f">{plan.max_job_urls}<" in html


def test_the_ledger_pages_and_exports_the_accounts_lines_only(
    tenant: Tenant, stranger: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CSV reads 7 lines a query here: 61 lines cross 9 pages, some inside a run of equal times.
    monkeypatch.setattr(billing_views, "LEDGER_CSV_PAGE", 7)
    for n in range(60):
        ledger_post(
            account_id=tenant.account.pk,
            amount=-1,
            kind="action",
            idempotency_key=f"l{n}",
            reason=f"line {n}",
        )
    ledger_post(
        account_id=stranger.account.pk, amount=-1, kind="action", idempotency_key="s", reason="theirs"
    )
    same_time = LedgerEntry.objects.get(account=tenant.account, reason="line 30").created_at
    LedgerEntry.objects.filter(
        account=tenant.account, reason__in=[f"line {n}" for n in range(25, 36)]
    ).update(created_at=same_time)
    pages = tenant.pages()
    first = pages.get("/console/billing/").content.decode()
    assert "line 59" in first and "line 5<" not in first and "page 1 of 2" in first
    second = pages.get("/console/billing/?page=2").content.decode()
    assert "line 5<" in second or "line 5</td>" in second
    exported = pages.get("/console/billing/ledger.csv")
    assert exported.status_code == 200 and exported["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(exported.streaming_content).decode())))
    assert len(rows) == 61  # 60 charges and the opening grant
    newest_first = [(datetime.fromisoformat(r["created_at"]), int(r["id"])) for r in rows]
    assert newest_first == sorted(newest_first, reverse=True) and len({r["id"] for r in rows}) == 61
    assert {r["reason"] for r in rows} >= {"line 0", "line 59"} and "theirs" not in {
        r["reason"] for r in rows
    }
    assert sum(int(r["amount"]) for r in rows) == 10_000 - 60


def test_the_alert_threshold_is_the_same_setting_as_the_api(tenant: Tenant) -> None:
    pages = tenant.pages()
    assert pages.post("/console/billing/alert/", {"mode": "percent", "value": "20"}).status_code == 302
    assert low_threshold_get(account_id=tenant.account.pk).percent == 20
    assert pages.post("/console/billing/alert/", {"mode": "percent", "value": "500"}).status_code == 400
    assert pages.post("/console/billing/alert/", {"mode": "credits", "value": "300"}).status_code == 302
    got = low_threshold_get(account_id=tenant.account.pk)
    assert (got.credits, got.percent) == (300, None)
    assert (
        tenant.pages(as_owner=False)
        .post("/console/billing/alert/", {"mode": "credits", "value": "1"})
        .status_code
        == 404
    )


def test_without_stripe_the_page_says_whom_to_ask(tenant: Tenant, settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = ""
    settings.BILLING_CONTACT = "billing@operator.test"
    page = tenant.pages().get("/console/billing/").content.decode()
    assert "Payments are not set up" in page and "billing@operator.test" in page
    assert "Pay with Stripe" not in page
    assert tenant.pages().post("/console/billing/checkout/", {"credits": "10000"}).status_code == 400


def test_add_credits_sends_the_owner_to_stripe_checkout(
    tenant: Tenant, settings: Any, fake_stripe: Any
) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_123"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_x"
    pages = tenant.pages()
    assert b"Pay with Stripe" in pages.get("/console/billing/").content
    started = pages.post("/console/billing/checkout/", {"credits": "50000"})
    assert (
        started.status_code == 303 and started["Location"] == "https://checkout.stripe.com/c/pay/cs_test_42"
    )
    (request,) = fake_stripe
    assert request["form"]["metadata[account_id]"] == [str(tenant.account.pk)]
    assert request["form"]["metadata[credits]"] == ["50000"]
    assert pages.post("/console/billing/checkout/", {"credits": "123"}).status_code == 400
    assert len(fake_stripe) == 1
