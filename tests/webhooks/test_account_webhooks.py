"""Account webhooks through the API, delivered by the real webhooks worker through the real egress
filter to receivers the tests run on loopback, verified with the `standardwebhooks` library.

127.0.0.2 stands for the service's own network: the test configuration allows only 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook

from tests.support.processes import wait_until
from tests.webhooks.receiver import Receiver, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver("127.0.0.1") as running:
        yield running


@pytest.fixture
def internal() -> Iterator[Receiver]:
    with running_receiver("127.0.0.2") as running:
        yield running


def _create(client: Any, url: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/webhooks", {"url": url, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def _deliveries(client: Any, endpoint_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/webhooks/{endpoint_id}/deliveries")
    assert response.status_code == 200, response.text
    return response.json()["results"]


def _settled(client: Any, endpoint_id: str, count: int = 1) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        rows = _deliveries(client, endpoint_id)
        return rows if len(rows) >= count and all(row["status"] != "pending" for row in rows) else None

    return wait_until(
        done, timeout=60, interval=0.3, message=f"{count} deliveries of {endpoint_id} to settle"
    )


def test_endpoint_crud_shows_the_secret_once(client, receiver):
    created = _create(client, f"{receiver.url}/ok-crud", events=["session.ended"], description="ops")
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["session.ended"] and created["enabled"] is True
    listed = client.get("/v1/webhooks").json()["results"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]
    shown = client.get(f"/v1/webhooks/{created['id']}").json()
    assert "secret" not in shown and shown["description"] == "ops"
    patched = client.request(
        "PATCH", f"/v1/webhooks/{created['id']}", json={"events": ["*"], "enabled": False}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["events"] == ["*"] and patched.json()["enabled"] is False
    assert client.delete(f"/v1/webhooks/{created['id']}").status_code == 204
    assert client.get(f"/v1/webhooks/{created['id']}").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://127.0.0.1/x"},
        {"url": "http://127.0.0.2:8080/x"},  # a forbidden literal address: refused at once
        {"url": "http://user:pw@127.0.0.1/x"},
        {"url": "http://127.0.0.1/x", "events": ["session.nope"]},
        {"url": "http://127.0.0.1/x", "events": []},
        {"url": "http://127.0.0.1/x", "description": "d" * 501},
        {"url": "http://127.0.0.1:99999/x"},
        {"url": "http://[::1/x"},
        {},
    ],
)
def test_bad_endpoints_are_400_and_create_nothing(client, body):
    response = client.post("/v1/webhooks", body)
    assert response.status_code == 400, response.text
    assert response.json()["code"]
    assert client.get("/v1/webhooks").json()["results"] == []


def test_ids_out_of_range_are_4xx(client, receiver):
    endpoint = _create(client, f"{receiver.url}/ok-range")
    huge = str(2**70)
    assert client.post(f"/v1/webhooks/deliveries/{huge}/redeliver").status_code == 404
    assert client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", params={"cursor": huge}).status_code == 400
    assert client.get(f"/v1/webhooks/{'x' * 300}").status_code == 404


def test_endpoints_are_capped_per_plan_and_private_to_their_account(free_client, make_client, receiver):
    for n in range(2):  # the free plan allows 2
        _create(free_client, f"{receiver.url}/ok-{n}")
    refused = free_client.post("/v1/webhooks", {"url": f"{receiver.url}/ok-3"})
    assert refused.status_code == 400 and refused.json()["code"] == "webhook_endpoint_limit"
    other = make_client(plan="pro", name="other")
    mine = free_client.get("/v1/webhooks").json()["results"][0]["id"]
    assert other.get(f"/v1/webhooks/{mine}").status_code == 404
    assert other.delete(f"/v1/webhooks/{mine}").status_code == 404
    assert other.get(f"/v1/webhooks/{mine}/deliveries").status_code == 404


def test_a_test_ping_is_signed_logged_and_redeliverable(client, receiver):
    endpoint = _create(client, f"{receiver.url}/ok-ping")
    answer = client.post(f"/v1/webhooks/{endpoint['id']}/test")
    assert answer.status_code == 202, answer.text
    event_id = answer.json()["event_id"]
    wait_until(lambda: receiver.posts("ok-ping"), timeout=30, message="the test ping")
    post = receiver.posts("ok-ping")[0]
    event = Webhook(endpoint["secret"]).verify(post["body"], post["headers"])
    assert event["id"] == event_id == post["headers"]["webhook-id"]
    assert event["type"] == "webhook.test" and event["data"] == {"endpoint_id": endpoint["id"]}
    [row] = _settled(client, endpoint["id"])
    assert row["status"] == "delivered" and row["status_code"] == 200 and row["attempts"] == 1
    assert row["event_id"] == event_id and row["latency_ms"] is not None and row["error"] == ""
    again = client.post(f"/v1/webhooks/deliveries/{row['id']}/redeliver")
    assert again.status_code == 202, again.text
    wait_until(lambda: len(receiver.posts("ok-ping")) == 2, timeout=30, message="the redelivery")
    assert receiver.posts("ok-ping")[1]["headers"]["webhook-id"] == event_id  # same id: receivers dedupe


def test_a_receiver_that_fails_once_gets_the_event_twice_with_one_id(client, receiver):
    endpoint = _create(client, f"{receiver.url}/fail-1-twice")
    client.post(f"/v1/webhooks/{endpoint['id']}/test")
    [row] = _settled(client, endpoint["id"])
    posts = receiver.posts("fail-1-twice")
    assert len(posts) == 2 and row["status"] == "delivered" and row["attempts"] == 2
    assert posts[0]["headers"]["webhook-id"] == posts[1]["headers"]["webhook-id"]
    assert posts[0]["body"] == posts[1]["body"]


def test_retry_after_of_a_429_is_honoured(client, receiver):
    endpoint = _create(client, f"{receiver.url}/retry-after")
    client.post(f"/v1/webhooks/{endpoint['id']}/test")
    [row] = _settled(client, endpoint["id"])
    assert row["status"] == "delivered" and row["attempts"] == 2


def test_410_gone_disables_the_endpoint(client, receiver):
    endpoint = _create(client, f"{receiver.url}/status-410-gone")
    client.post(f"/v1/webhooks/{endpoint['id']}/test")
    [row] = _settled(client, endpoint["id"])
    assert row["status"] == "failed" and row["error"] == "HTTP 410" and row["attempts"] == 1
    shown = client.get(f"/v1/webhooks/{endpoint['id']}").json()
    assert shown["enabled"] is False and "410" in shown["disabled_reason"]


def test_a_permanent_4xx_is_not_retried_and_a_5xx_gives_up_after_its_attempts(client, receiver):
    bad = _create(client, f"{receiver.url}/status-400-bad")
    down = _create(client, f"{receiver.url}/status-503-down")
    client.post(f"/v1/webhooks/{bad['id']}/test")
    client.post(f"/v1/webhooks/{down['id']}/test")
    [row] = _settled(client, bad["id"])
    assert row["status"] == "failed" and row["error"] == "HTTP 400" and row["attempts"] == 1
    [row] = _settled(client, down["id"])
    assert (
        row["status"] == "failed" and row["error"] == "HTTP 503" and row["attempts"] == 3
    )  # WEBHOOK_MAX_ATTEMPTS


def test_rotation_signs_with_both_secrets_during_the_overlap(client, receiver):
    endpoint = _create(client, f"{receiver.url}/ok-rotate")
    rotated = client.post(f"/v1/webhooks/{endpoint['id']}/rotate")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"] and rotated.json()["previous_secret_expires_at"]
    client.post(f"/v1/webhooks/{endpoint['id']}/test")
    wait_until(lambda: receiver.posts("ok-rotate"), timeout=30, message="a post after rotation")
    post = receiver.posts("ok-rotate")[0]
    assert len(post["headers"]["webhook-signature"].split(" ")) == 2
    Webhook(endpoint["secret"]).verify(post["body"], post["headers"])  # old receivers still verify
    Webhook(new_secret).verify(post["body"], post["headers"])


def test_a_redirect_is_not_followed(client, receiver, internal):
    endpoint = _create(client, f"{receiver.url}/redirect-x?to={internal.url}/shutdown")
    client.post(f"/v1/webhooks/{endpoint['id']}/test")
    [row] = _settled(client, endpoint["id"])
    assert row["status"] == "failed" and row["error"] == "HTTP 303" and row["attempts"] == 1
    assert internal.all() == []


def test_an_address_forbidden_at_delivery_time_is_refused_by_the_filter_and_logged(
    client, receiver, internal
):
    """The URL was fine when it was saved; when the delivery goes out it names a forbidden
    address (what a DNS answer that changed would do). The filter refuses it: the internal host
    sees nothing, the log says `failed` and nothing more."""
    from webhooks.models import Endpoint

    endpoint = _create(client, f"{receiver.url}/ok-rebind")
    Endpoint.objects.filter(pk=endpoint["id"]).update(url=f"{internal.url}/private")
    client.post(f"/v1/webhooks/{endpoint['id']}/test")
    [row] = _settled(client, endpoint["id"])
    assert row["status"] == "failed" and row["error"] == "failed" and row["status_code"] is None
    assert row["attempts"] == 3
    assert internal.all() == [] and receiver.all() == []


def test_an_attempt_past_its_deadline_is_retried_never_left_pending(client, receiver):
    """A receiver that trickles its answer (each read well within WEBHOOK_TIMEOUT_SECONDS, the
    whole past the attempt's soft time limit, WEBHOOK_TIMEOUT_SECONDS + 5): the attempt ends as
    `failed` and the delivery goes on to its next attempt, never stuck in `pending`."""
    endpoint = _create(client, f"{receiver.url}/trickle-12000-late")
    client.post(f"/v1/webhooks/{endpoint['id']}/test")

    def first_attempt_recorded():
        rows = _deliveries(client, endpoint["id"])
        return rows if rows and rows[0]["error"] == "failed" else None

    [row] = wait_until(
        first_attempt_recorded, timeout=60, interval=0.3, message="the late attempt to be recorded"
    )
    assert row["status"] in ("pending", "failed")
    if row["status"] == "pending":
        assert row["next_attempt_at"] is not None


def test_delivery_log_is_cursor_paged(client, receiver):
    endpoint = _create(client, f"{receiver.url}/ok-pages")
    for _ in range(5):
        client.post(f"/v1/webhooks/{endpoint['id']}/test")
    _settled(client, endpoint["id"], count=5)
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", params=params).json()
        seen += [row["id"] for row in page["results"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    assert client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", params={"limit": 0}).status_code == 400
    assert client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", params={"cursor": "x"}).status_code == 400


def test_session_events_arrive_with_their_fields(client, receiver):
    endpoint = _create(client, f"{receiver.url}/ok-sessions", events=["session.started", "session.ended"])
    for _ in range(3):  # a browser that cannot start on a loaded machine is a 503 the SDK retries
        session = client.post("/v1/computers", {})
        if session.status_code != 503:
            break
    assert session.status_code == 201, session.text
    session_id = session.json()["id"]
    assert client.delete(f"/v1/computers/{session_id}").status_code == 200
    wait_until(
        lambda: [p for p in receiver.posts("ok-sessions") if session_id.encode() in p["body"]][1:],
        timeout=60,
        message="session.started and ended",
    )
    verifier = Webhook(endpoint["secret"])
    posts = receiver.posts("ok-sessions")
    events = {e["type"]: e for e in (verifier.verify(p["body"], p["headers"]) for p in posts)}
    events = {t: e for t, e in events.items() if e["data"]["session_id"] == session_id}
    assert set(events) == {"session.started", "session.ended"}
    assert events["session.started"]["data"]["session_id"] == session_id
    ended = events["session.ended"]["data"]
    assert ended["session_id"] == session_id and ended["ended_reason"] == "user"
    assert ended["duration_seconds"] >= 0 and ended["credits"] > 0  # the first minute at least


def test_credit_events_cross_the_threshold_once(make_client, receiver):
    from billing.ledger import ledger_post
    from billing.models import Balance

    client = make_client(plan="pro", credits=1500)
    Balance.objects.filter(account_id=client.account.pk).update(low_threshold=1000)
    endpoint = _create(client, f"{receiver.url}/ok-credits", events=["credits.low", "credits.exhausted"])
    for n, amount in enumerate((400, 400, 400, 300)):  # 1100, 700 (low), 300, 0 (exhausted)
        ledger_post(account_id=client.account.pk, amount=-amount, kind="adjustment", idempotency_key=f"t:{n}")
    _settled(client, endpoint["id"], count=2)
    events = [json.loads(p["body"]) for p in receiver.posts("ok-credits")]
    assert sorted(e["type"] for e in events) == ["credits.exhausted", "credits.low"]
    low = next(e for e in events if e["type"] == "credits.low")
    assert low["data"]["balance"] == 700 and low["data"]["threshold"] == 1000


def test_a_rolled_back_change_sends_nothing(client, receiver):
    from webhooks.models import Event
    from webhooks.services import event_emit

    endpoint = _create(client, f"{receiver.url}/ok-rollback")

    class Undo(Exception):
        pass

    def change_that_fails() -> None:
        with transaction.atomic():
            event_emit(account_id=client.account.pk, type="session.started", data={"session_id": "x"})
            raise Undo

    with pytest.raises(Undo):
        change_that_fails()
    assert not Event.objects.exists()
    # Then a change that commits: its event arrives, and it is the only one that does (what
    # rolled back would have been sent first, by the same worker and sweep).
    with transaction.atomic():
        event_emit(account_id=client.account.pk, type="session.started", data={"session_id": "y"})
    [row] = _settled(client, endpoint["id"])
    assert [json.loads(p["body"])["data"]["session_id"] for p in receiver.posts("ok-rollback")] == ["y"]
    assert row["status"] == "delivered"


def test_a_delivery_whose_send_was_lost_is_sent_by_the_sweep(client, receiver):
    """A crash between the commit and the send to the queue: the rows are there, no task is.
    Beat's sweep finds the delivery due and sends it."""
    from webhooks.models import Delivery, Endpoint, Event

    endpoint_id = _create(client, f"{receiver.url}/ok-lost")["id"]
    event = Event.objects.create(
        account_id=client.account.pk,
        type="session.started",
        payload={"id": "evt_lost", "type": "session.started"},
    )
    Delivery.objects.create(
        event=event, endpoint=Endpoint.objects.get(pk=endpoint_id), next_attempt_at=timezone.now()
    )
    wait_until(lambda: receiver.posts("ok-lost"), timeout=30, message="the sweep to send the lost delivery")
    assert receiver.posts("ok-lost")[0]["headers"]["webhook-id"] == event.pk


def test_an_attempt_of_a_dead_worker_is_sent_again_after_its_claim_expires(client, receiver):
    """A worker killed mid-delivery leaves the delivery claimed (`sending_until`) with an attempt
    counted: once the claim expires the sweep sends it again."""
    from webhooks.models import Delivery, Endpoint, Event

    endpoint_id = _create(client, f"{receiver.url}/ok-killed")["id"]
    event = Event.objects.create(account_id=client.account.pk, type="session.started", payload={"id": "e"})
    now = timezone.now()
    Delivery.objects.create(
        event=event,
        endpoint=Endpoint.objects.get(pk=endpoint_id),
        next_attempt_at=now - timedelta(seconds=60),
        attempts=1,
        sending_until=now + timedelta(seconds=2),  # the dead worker's claim, about to expire
    )
    wait_until(
        lambda: receiver.posts("ok-killed"), timeout=30, message="the redelivery after the claim expired"
    )
    [row] = _settled(client, endpoint_id)
    assert row["status"] == "delivered" and row["attempts"] == 2


def test_purge_forgets_old_events_and_keeps_recent_ones(client, receiver):
    from webhooks.models import Delivery, Event
    from webhooks.services import webhooks_purge

    endpoint = _create(client, f"{receiver.url}/ok-purge")
    client.post(f"/v1/webhooks/{endpoint['id']}/test")
    client.post(f"/v1/webhooks/{endpoint['id']}/test")
    _settled(client, endpoint["id"], count=2)
    old = Event.objects.order_by("created_at").first()
    assert old is not None
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=8))
    assert webhooks_purge() == 1
    assert Event.objects.count() == 1 and Delivery.objects.count() == 1


def _webhooks_worker_children() -> list[int]:
    """The pool processes of this run's webhooks worker (tests/conftest.py starts it)."""
    import os
    from pathlib import Path

    def read(pid: str | int, name: str) -> str:
        return (Path("/proc") / str(pid) / name).read_bytes().decode(errors="replace")

    children = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline, environ = read(pid, "cmdline"), read(pid, "environ").split("\0")
            ppid = int(read(pid, "stat").rsplit(")", 1)[1].split()[1])
            mine = "test-webhooks@" in cmdline and f"REDIS_URL={os.environ['REDIS_URL']}" in environ
            if mine and ppid != 1 and "test-webhooks@" in read(ppid, "cmdline"):
                children.append(int(pid))
        except (OSError, ValueError, IndexError):
            continue
    return children


def test_a_worker_killed_mid_delivery_redelivers(client, receiver):
    """SIGKILL the webhooks worker's pool processes while an attempt is in flight (the receiver
    stalls its first answer): the delivery is not lost, not stuck `pending`; once the dead
    attempt's claim expires it is sent again, with the same event id."""
    import os
    import signal

    endpoint = _create(client, f"{receiver.url}/stall-12000-killed")
    event_id = client.post(f"/v1/webhooks/{endpoint['id']}/test").json()["event_id"]
    wait_until(lambda: receiver.posts("stall-12000-killed"), timeout=30, message="the first attempt")
    children = _webhooks_worker_children()
    assert children, "no webhooks worker pool process found"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: len(receiver.posts("stall-12000-killed")) >= 2, timeout=90, message="the redelivery")
    [row] = _settled(client, endpoint["id"])
    assert row["status"] == "delivered" and row["attempts"] == 2
    assert {p["headers"]["webhook-id"] for p in receiver.posts("stall-12000-killed")} == {event_id}
