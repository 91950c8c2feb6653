"""Credits are money: exactly once, never below zero, explainable line by line."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import tzafon
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from accounts.models import Plan
from billing.models import Balance, LedgerEntry, Price
from sessions.models import Action, ActionStatus, BrowserSession
from sessions.time_billing import session_time_bill, sessions_bill_time
from tests.support.rows import session_row
from workers.action_runner import actions_drain


def _balance(client) -> int:
    return Balance.objects.get(account=client.account).credits


def test_parallel_actions_spend_the_balance_exactly_to_zero(make_client):
    client = make_client(plan="enterprise", credits=1 + 20)  # the first minute, then 20 waits at 1
    session_id = client.post("/v1/computers", {}).json()["id"]

    def wait_action(_):
        return client.post(f"/v1/computers/{session_id}/execute", {"action": {"type": "wait", "ms": 1}})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(wait_action, range(40)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 20 and codes.count(402) == 20
    refused = next(r for r in responses if r.status_code == 402).json()
    assert refused["code"] == "insufficient_credits" and "costs 1" in refused["detail"]
    assert _balance(client) == 0
    charges = LedgerEntry.objects.filter(account=client.account, kind="action")
    assert charges.count() == 20
    assert len(set(charges.values_list("action_id", flat=True))) == 20
    assert Action.objects.filter(session_id=session_id).count() == 20  # refused ones were not recorded


def test_a_redelivered_or_repeated_action_task_charges_nothing_twice(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    done = client.post(f"/v1/computers/{session_id}/execute", {"action": {"type": "wait", "ms": 1}}).json()
    assert done["status"] == "success"
    before = list(LedgerEntry.objects.filter(account=client.account).values_list("pk", flat=True))
    actions_drain(session_id=session_id)  # what a redelivered task does
    from workers.tasks import actions_run

    actions_run.delay(session_id)
    actions_drain(session_id=session_id)
    assert list(LedgerEntry.objects.filter(account=client.account).values_list("pk", flat=True)) == before
    assert LedgerEntry.objects.filter(idempotency_key=f"action:{done['action_id']}").count() == 1


def test_an_action_cut_off_by_a_lost_worker_is_refunded_once(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    accepted = client.post(f"/v1/computers/{session_id}/html?wait=false", {}).json()
    action = Action.objects.get(public_id=accepted["action_id"])
    # Let it finish, then pretend a worker died while running a second one.
    from tests.support.processes import wait_until

    wait_until(lambda: Action.objects.get(pk=action.pk).is_finished, timeout=20, message="action done")
    # ... and until its worker let go of the session's queue: a drain below that found the lock
    # still held would leave the lost action to a holder that already looked for more.
    from project.redis import get_redis
    from workers.action_runner import lock_key

    wait_until(lambda: not get_redis().exists(lock_key(session_id)), timeout=20, message="lock released")
    lost = Action.objects.create(
        session_id=session_id,
        account=client.account,
        type="html",
        params={},
        price=2,
        status=ActionStatus.RUNNING,
        started_at=timezone.now(),
    )
    from billing.ledger import ledger_post

    ledger_post(  # the charge the accept wrote with it
        account_id=client.account.pk,
        amount=-2,
        kind=LedgerEntry.Kind.ACTION,
        idempotency_key=f"action:{lost.public_id}",
        session_id=session_id,
        action_id=lost.pk,
    )
    balance = _balance(client)
    actions_drain(session_id=session_id)
    actions_drain(session_id=session_id)
    lost.refresh_from_db()
    assert lost.status == ActionStatus.ERRORED
    assert LedgerEntry.objects.filter(action=lost, kind="refund").count() == 1
    assert _balance(client) == balance + 2


def test_page_side_failures_are_charged_and_our_failures_refunded(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    failed = client.post(
        f"/v1/computers/{session_id}/step", {"action": "click", "selector": "#missing", "timeout_ms": 100}
    ).json()
    assert failed["status"] == "error"
    assert not LedgerEntry.objects.filter(action__public_id=failed["action_id"], kind="refund").exists()
    assert LedgerEntry.objects.get(action__public_id=failed["action_id"], kind="action").amount == -5

    import os
    import signal

    os.killpg(BrowserSession.objects.get(pk=session_id).browser_pid, signal.SIGKILL)
    crashed = client.post(f"/v1/computers/{session_id}/html", {})
    if crashed.status_code == 200:  # accepted before the crash was noticed: refunded
        action_id = crashed.json()["action_id"]
        assert crashed.json()["status"] == "error"
        assert LedgerEntry.objects.get(action__public_id=action_id, kind="refund").amount == 2
    else:
        assert crashed.status_code == 410


def test_batch_steps_that_never_ran_are_refunded(client, pages_server):
    session_id = client.post("/v1/computers", {}).json()["id"]
    batch = client.post(
        f"/v1/computers/{session_id}/batch",
        {
            "actions": [
                {"type": "wait", "ms": 1},  # 1, ran
                {
                    "type": "step",
                    "action": "click",
                    "selector": "#nope",
                    "timeout_ms": 50,
                },  # 5, ran and failed
                {"type": "scrape"},  # 10, never ran
            ]
        },
    ).json()
    assert batch["status"] == "error" and batch["completed"] == 1
    assert len(batch["results"]) == 2
    action = Action.objects.get(public_id=batch["action_id"])
    assert action.price == 16
    assert LedgerEntry.objects.get(action=action, kind="refund").amount == 10


def test_time_billing_run_twice_for_the_same_minute_charges_once(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    BrowserSession.objects.filter(pk=session_id).update(created_at=timezone.now() - timedelta(seconds=150))

    def bill():
        session_time_bill(session_id=session_id)
        connection.close()

    threads = [threading.Thread(target=bill) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sessions_bill_time()
    minutes = LedgerEntry.objects.filter(session_id=session_id, kind="session_time")
    assert sorted(minutes.values_list("idempotency_key", flat=True)) == [
        f"session:{session_id}:minute:{m}" for m in range(3)
    ]
    assert BrowserSession.objects.get(pk=session_id).billed_minutes == 3


def test_a_session_whose_time_charge_finds_no_credits_ends_credits_exhausted(make_client):
    client = make_client(plan="pro", credits=1)
    session_id = client.post("/v1/computers", {}).json()["id"]
    assert _balance(client) == 0
    BrowserSession.objects.filter(pk=session_id).update(created_at=timezone.now() - timedelta(seconds=61))
    assert sessions_bill_time()["sessions_exhausted"] == 1
    row = BrowserSession.objects.get(pk=session_id)
    assert row.status == "terminated" and row.ended_reason == "credits_exhausted"
    assert _balance(client) == 0


def test_402_paths_through_the_sdk(make_client, pages_server):
    broke = make_client(plan="pro", credits=0)
    sdk = broke.sdk()
    with pytest.raises(tzafon.APIStatusError) as refused:
        sdk.computers.create(kind="browser")
    assert refused.value.status_code == 402
    assert not BrowserSession.objects.filter(account=broke.account).exists()

    one_minute = make_client(plan="pro", credits=1)
    sdk = one_minute.sdk()
    with sdk.computer.create(kind="browser") as computer:
        with pytest.raises(tzafon.APIStatusError) as no_credit:
            computer.navigate(pages_server + "/flow.html")
        assert no_credit.value.status_code == 402
        assert computer.retrieve().status == "ready"  # the session goes on
    assert not Action.objects.filter(account=one_minute.account).exists()


def test_account_usage_ledger_and_session_cost(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    client.post(f"/v1/computers/{session_id}/html", {})
    client.post(f"/v1/computers/{session_id}/execute", {"action": {"type": "wait", "ms": 1}})
    account = client.get("/v1/account").json()
    assert account["plan"]["name"] == "pro" and account["live_sessions"] == 1
    assert account["balance"] == 100_000 - 1 - 2 - 1
    session = client.get(f"/v1/computers/{session_id}").json()
    assert session["credits_spent"] == 4
    assert client.get("/v1/computers").json()[0]["credits_spent"] == 4
    usage = client.get("/v1/usage?group_by=hour").json()
    assert usage["credits_spent"] == 4
    assert usage["credits_by_kind"] == {"action": 3, "session_time": 1}
    assert usage["credits_by_action_type"] == {"html": 2, "wait": 1}
    assert usage["session_minutes"] == 1 and usage["sessions"] == 1 and usage["actions"] == 2
    assert sum(b["credits"] for b in usage["buckets"]) == 4
    ledger = client.get("/v1/ledger?limit=2").json()
    assert [e["kind"] for e in ledger["results"]] == ["action", "action"] and ledger["has_more"]
    assert (
        ledger["results"][0]["amount"] == -1 and ledger["results"][0]["balance_after"] == account["balance"]
    )
    assert client.get("/v1/usage?group_by=week").status_code == 400
    assert client.get("/v1/usage?from=yesterday").status_code == 400
    # Impossible dates are bad input; a date-time without an offset is UTC.
    assert client.get("/v1/usage?from=2026-02-30T00:00:00Z").status_code == 400
    naive = client.get("/v1/usage?from=2026-01-01T00:00:00&to=2026-01-02T00:00:00")
    assert naive.status_code == 200, naive.text
    assert naive.json()["from"] == "2026-01-01T00:00:00Z"


def test_plan_rate_limit_and_plan_changes_apply_at_once(make_api_client):
    free_client = make_api_client(plan="free")
    Plan.objects.filter(name="free").update(requests_per_minute=5)
    codes = [free_client.get("/v1/account").status_code for _ in range(6)]
    assert codes[:5] == [200] * 5 and codes[5] == 429
    limited = free_client.get("/v1/account")
    assert limited.json()["code"] == "rate_limited" and 1 <= int(limited.headers["Retry-After"]) <= 61
    free_client.account.plan = Plan.objects.get(name="enterprise")
    free_client.account.save()
    assert free_client.get("/v1/account").json()["plan"]["name"] == "enterprise"


def test_check_balances_reports_a_balance_that_left_its_ledger(api_client):
    call_command("check_balances")
    Balance.objects.filter(account=api_client.account).update(credits=5)
    with pytest.raises(CommandError):
        call_command("check_balances")
    Balance.objects.filter(account=api_client.account).update(credits=100_000)


def test_prices_are_editable_and_apply_to_the_next_action(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    Price.objects.filter(item="wait").update(credits=7)
    done = client.post(f"/v1/computers/{session_id}/execute", {"action": {"type": "wait", "ms": 1}}).json()
    assert LedgerEntry.objects.get(action__public_id=done["action_id"]).amount == -7


def test_a_command_without_a_price_costs_the_dearest_action(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    wait = Price.objects.get(item="wait")
    dearest = Price.objects.exclude(item=Price.SESSION_MINUTE).order_by("-credits").first().credits
    wait.delete()  # an operator's mistake must not make an action free
    try:
        reply = client.post(f"/v1/computers/{session_id}/execute", {"action": {"type": "wait", "ms": 1}})
        assert reply.json()["status"] == "success"
        assert LedgerEntry.objects.get(action__public_id=reply.json()["action_id"]).amount == -dearest
    finally:
        wait.save()


def test_a_browser_that_never_started_is_not_billed(plans, settings):
    from accounts.services import account_create
    from billing.services import session_minute_charge
    from workers.services import session_browser_start, session_browser_stop

    account = account_create(name="nostart", plan_name="pro", credits=10)[0]
    # The row and first-minute charge a create makes, without queueing the start: this
    # process plays the worker, so that the start fails here and nowhere else.
    session = session_row(account, billed_minutes=1)
    session_minute_charge(account_id=account.pk, session_id=session.pk, minute=0)
    assert Balance.objects.get(account=account).credits == 9
    settings.CHROMEDRIVER_BINARY = "/bin/false"
    settings.BROWSER_EGRESS_ENABLED = False  # the start must fail at chromedriver, not for want of a filter
    session_browser_start(session_id=session.pk)
    session.refresh_from_db()
    assert session.status == "terminated" and session.ended_reason == "start_failed"
    session_browser_stop(session_id=session.pk)
    session_browser_stop(session_id=session.pk)
    assert Balance.objects.get(account=account).credits == 10
    assert LedgerEntry.objects.filter(session=session, kind="refund").count() == 1
