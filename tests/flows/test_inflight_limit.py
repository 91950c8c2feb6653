"""One account cannot hold every web thread: requests that wait for a result are capped per
account (its plan's max_waiting_requests, else ACCOUNT_MAX_INFLIGHT_REQUESTS); over the cap is 429
with Retry-After, and nothing runs."""

from __future__ import annotations

import threading
from typing import Any

from accounts.models import Plan
from billing.selectors import balance_of
from project.redis import get_redis
from sessions.models import Action
from tests.support.processes import wait_until


def _held(account_id: int) -> int:
    return int(get_redis().zcard(f"bf:inflight:{account_id}"))


def test_waiting_requests_over_the_accounts_cap_are_429_and_charge_nothing(
    make_client: Any, settings: Any
) -> None:
    settings.ACCOUNT_MAX_INFLIGHT_REQUESTS = 2
    Plan.objects.filter(name="pro").update(max_waiting_requests=None)  # the setting's cap
    client = make_client(plan="pro")
    other = make_client(plan="pro", name="other")
    session_id = client.post("/v1/computers", {}).json()["id"]
    other_session = other.post("/v1/computers", {}).json()["id"]
    assert _held(client.account.pk) == 0  # the create gave its slot back

    answers: list[int] = []
    waiting = [
        threading.Thread(
            target=lambda: answers.append(
                client.post(
                    f"/v1/computers/{session_id}/execute", {"action": {"type": "wait", "ms": 1500}}
                ).status_code
            )
        )
        for _ in range(2)
    ]
    for thread in waiting:
        thread.start()
    try:
        wait_until(lambda: _held(client.account.pk) == 2, timeout=10, message="two requests waiting")
        actions_before, balance_before = Action.objects.count(), balance_of(account_id=client.account.pk)

        refused = client.post(f"/v1/computers/{session_id}/execute", {"action": {"type": "wait", "ms": 1}})
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "too_many_requests_in_flight"
        assert int(refused.headers["Retry-After"]) >= 1
        assert client.post("/v1/computers", {}).status_code == 429
        assert Action.objects.count() == actions_before
        assert balance_of(account_id=client.account.pk) == balance_before

        # Not waiting holds no thread: accepted, and answered at once.
        assert client.post(f"/v1/computers/{session_id}/wait?wait=false", {"ms": 1}).status_code == 202
        # Another account is not affected.
        assert other.post(f"/v1/computers/{other_session}/wait", {"ms": 1}).status_code == 200
    finally:
        for thread in waiting:
            thread.join(timeout=30)
    assert answers == [200, 200]
    assert _held(client.account.pk) == 0
    assert client.post(f"/v1/computers/{session_id}/wait", {"ms": 1}).status_code == 200


def test_the_cap_follows_the_plan(make_client: Any, settings: Any) -> None:
    """A plan's max_waiting_requests wins over the setting; each account counts its own."""
    settings.ACCOUNT_MAX_INFLIGHT_REQUESTS = 1
    Plan.objects.filter(name="enterprise").update(max_waiting_requests=3)
    Plan.objects.filter(name="free").update(max_waiting_requests=None)
    big = make_client(plan="enterprise")
    small = make_client(plan="free", name="small")
    big_session = big.post("/v1/computers", {}).json()["id"]
    small_session = small.post("/v1/computers", {}).json()["id"]

    answers: list[int] = []
    threads = [
        threading.Thread(
            target=lambda sid=sid, c=c: answers.append(
                c.post(f"/v1/computers/{sid}/execute", {"action": {"type": "wait", "ms": 1500}}).status_code
            )
        )
        for c, sid in [(big, big_session)] * 3 + [(small, small_session)]
    ]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: _held(big.account.pk) == 3 and _held(small.account.pk) == 1,
            timeout=10,
            message="three enterprise requests and one free request waiting",
        )
        assert big.post(f"/v1/computers/{big_session}/wait", {"ms": 1}).status_code == 429
        refused = small.post(f"/v1/computers/{small_session}/wait", {"ms": 1})
        assert refused.status_code == 429
        assert refused.json()["limit"] == 1
    finally:
        for thread in threads:
            thread.join(timeout=30)
    assert sorted(answers) == [200, 200, 200, 200]
