"""The ledger knows the key; a key's monthly spend cap refuses before anything runs or is paid."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from accounts.authentication import RequestKey
from accounts.models import ApiKey
from accounts.services import account_create, api_key_create
from billing.models import Balance, KeySpend, LedgerEntry
from billing.spend_caps import key_spend_cap_set, key_spend_get
from project.exceptions import KeySpendCapReached
from sessions.action_queue import action_submit
from sessions.models import Action
from sessions.services import SessionSpec, session_create
from tests.support.rows import session_row


def _key(client) -> ApiKey:
    return ApiKey.objects.get(account=client.account)


def _balance(account) -> int:
    return Balance.objects.get(account=account).credits


def test_charges_name_the_key_they_were_made_with(api_client):
    key = _key(api_client)
    session = session_row(api_client.account, status="ready")
    accepted = api_client.post(f"/v1/computers/{session.pk}/html?wait=false", {})
    assert accepted.status_code == 202, accepted.text
    action = Action.objects.get(public_id=accepted.json()["action_id"])
    assert action.api_key_id == key.pk
    charge = LedgerEntry.objects.get(idempotency_key=f"action:{action.public_id}")
    assert charge.api_key_id == key.pk and charge.amount == -2
    # A create (the service the view calls; no worker here to start a browser) records the key
    # on the session and on its first minute.
    created = session_create(account=api_client.account, spec=SessionSpec(), api_key_id=key.pk)
    minute = LedgerEntry.objects.get(session_id=created.pk, kind="session_time")
    assert minute.api_key_id == key.pk and created.api_key_id == key.pk


def test_a_key_over_its_cap_gets_402_and_nothing_is_charged_or_recorded(api_client):
    key = _key(api_client)
    session = session_row(api_client.account, status="ready")
    key_spend_cap_set(account_id=api_client.account.pk, api_key_id=key.pk, cap=3)
    first = api_client.post(f"/v1/computers/{session.pk}/html?wait=false", {})  # 2 of 3
    assert first.status_code == 202, first.text
    balance = _balance(api_client.account)
    actions = Action.objects.count()
    refused = api_client.post(f"/v1/computers/{session.pk}/html?wait=false", {})  # 4 > 3
    assert refused.status_code == 402, refused.text
    body = refused.json()
    assert body["code"] == "key_spend_cap_reached"
    assert body["cap"] == 3 and body["spent"] == 2 and body["required"] == 2
    assert _balance(api_client.account) == balance
    assert Action.objects.count() == actions
    assert key_spend_get(api_key_id=key.pk).spent == 2
    # One credit is left under the cap: a wait (1) still goes.
    ok = api_client.post(
        f"/v1/computers/{session.pk}/execute?wait=false", {"action": {"type": "wait", "ms": 1}}
    )
    assert ok.status_code == 202, ok.text
    # Another key of the same account is not capped.
    _, other = api_key_create(account=api_client.account, name="other")
    api_client.key = other
    assert api_client.post(f"/v1/computers/{session.pk}/html?wait=false", {}).status_code == 202
    # A session create with a capped key is refused the same way, with no session left behind.
    key_spend_cap_set(account_id=api_client.account.pk, api_key_id=ApiKey.objects.get(name="other").pk, cap=0)
    api_client.key = other
    sessions_before = api_client.account.sessions.count()
    create = api_client.post("/v1/computers", {})
    assert create.status_code == 402 and create.json()["code"] == "key_spend_cap_reached", create.text
    assert api_client.account.sessions.count() == sessions_before


def test_a_cap_set_mid_month_counts_what_the_key_spent_before(api_client):
    key = _key(api_client)
    session = session_row(api_client.account, status="ready")
    for _ in range(2):
        assert api_client.post(f"/v1/computers/{session.pk}/html?wait=false", {}).status_code == 202
    spend = key_spend_cap_set(account_id=api_client.account.pk, api_key_id=key.pk, cap=5)
    assert spend.spent == 4
    refused = api_client.post(f"/v1/computers/{session.pk}/html?wait=false", {})
    assert refused.status_code == 402 and refused.json()["code"] == "key_spend_cap_reached"
    key_spend_cap_set(account_id=api_client.account.pk, api_key_id=key.pk, cap=None)  # removed
    assert api_client.post(f"/v1/computers/{session.pk}/html?wait=false", {}).status_code == 202


def test_a_refund_gives_the_key_its_spending_back(db, plans):
    from billing.ledger import ledger_post

    account, _ = account_create(name="refund", plan_name="pro", credits=100)
    key = ApiKey.objects.get(account=account)
    key_spend_cap_set(account_id=account.pk, api_key_id=key.pk, cap=10)
    ledger_post(account_id=account.pk, amount=-6, kind="action", idempotency_key="c1", api_key_id=key.pk)
    with pytest.raises(KeySpendCapReached):
        ledger_post(
            account_id=account.pk,
            amount=-6,
            kind="job_hold",
            idempotency_key="c2",
            api_key_id=key.pk,
            enforce_key_cap=True,
        )
    assert not LedgerEntry.objects.filter(idempotency_key="c2").exists()
    ledger_post(account_id=account.pk, amount=4, kind="refund", idempotency_key="r1", api_key_id=key.pk)
    assert key_spend_get(api_key_id=key.pk).spent == 2
    assert _balance(account) == 100 - 6 + 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_accepts_never_pass_the_cap_together(plans):
    account, _ = account_create(name="race", plan_name="enterprise", credits=10_000)
    key = ApiKey.objects.get(account=account)
    sessions = [session_row(account, status="ready") for _ in range(4)]
    key_spend_cap_set(account_id=account.pk, api_key_id=key.pk, cap=10)
    request_key = RequestKey(id=key.pk, spend_capped=True)
    start = threading.Barrier(8)

    def accept(i: int) -> str:
        from django.db import connection

        try:
            start.wait(timeout=30) if i < 8 else None
            action_submit(
                session_id=sessions[i % 4].pk,
                account=account,
                action={"type": "wait", "ms": 1},
                api_key=request_key,
            )
            return "accepted"
        except KeySpendCapReached:
            return "capped"
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(accept, range(30)))
    assert outcomes.count("accepted") == 10, outcomes
    assert outcomes.count("capped") == 20
    assert Action.objects.filter(account=account).count() == 10
    assert LedgerEntry.objects.filter(account=account, kind="action", api_key=key).count() == 10
    assert KeySpend.objects.get(api_key=key).spent == 10
    assert _balance(account) == 10_000 - 10


def test_usage_reports_spending_by_key_and_filters_by_key(api_client, make_api_client):
    first = _key(api_client)
    _, raw_second = api_key_create(account=api_client.account, name="second")
    second = ApiKey.objects.get(account=api_client.account, name="second")
    session = session_row(api_client.account, status="ready")
    assert api_client.post(f"/v1/computers/{session.pk}/html?wait=false", {}).status_code == 202  # 2, first
    api_client.key, raw_first = raw_second, api_client.key
    for _ in range(3):  # 3 x 2, second
        assert api_client.post(f"/v1/computers/{session.pk}/html?wait=false", {}).status_code == 202
    api_client.key = raw_first
    usage = api_client.get("/v1/usage").json()
    by_key = {row["api_key_id"]: row for row in usage["credits_by_api_key"]}
    assert by_key[first.pk]["credits"] == 2 and by_key[second.pk]["credits"] == 6
    assert by_key[second.pk]["prefix"] == second.prefix and by_key[second.pk]["name"] == "second"
    assert usage["api_key"] is None and usage["actions"] == 4
    only = api_client.get("/v1/usage", params={"api_key": second.pk}).json()
    assert only["api_key"] == second.pk and only["credits_spent"] == 6 and only["actions"] == 3
    assert [row["api_key_id"] for row in only["credits_by_api_key"]] == [second.pk]
    ledger = api_client.get("/v1/ledger").json()["results"]
    assert {line["api_key_id"] for line in ledger if line["kind"] == "action"} == {first.pk, second.pk}
    theirs = ApiKey.objects.get(account=make_api_client(name="other").account)
    assert api_client.get("/v1/usage", params={"api_key": theirs.pk}).status_code == 404
    for bad in ("x", "-1", "1" * 30):
        assert api_client.get("/v1/usage", params={"api_key": bad}).status_code == 400
