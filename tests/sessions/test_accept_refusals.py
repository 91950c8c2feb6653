"""A refused action writes nothing: no action row, no ledger line, the balance as it was.

The accept is one SQL statement (sessions/action_queue.py); when it refuses, the ORM only
explains why. Each reason goes through the HTTP API here.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from billing.models import Balance, LedgerEntry
from sessions.models import Action, BrowserSession
from tests.support.rows import session_row

WAIT = {"action": {"type": "wait", "ms": 0}}


def _written(client) -> tuple[int, int, int]:
    """(action rows, ledger lines, balance) of the client's account."""
    account = client.account
    return (
        Action.objects.filter(account=account).count(),
        LedgerEntry.objects.filter(account=account).count(),
        Balance.objects.get(account=account).credits,
    )


def _refused(client, session_id: str, status: int, code: str) -> None:
    before = _written(client)
    response = client.post(f"/v1/computers/{session_id}/execute", WAIT)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert _written(client) == before


def test_unknown_and_other_accounts_sessions_are_404_and_write_nothing(make_client):
    owner, other = make_client(plan="pro", name="owner"), make_client(plan="pro", name="other")
    session_id = owner.post("/v1/computers", {}).json()["id"]
    touched = BrowserSession.objects.get(pk=session_id).last_activity_at
    _refused(other, session_id, 404, "session_not_found")
    _refused(other, "comp_nope", 404, "session_not_found")
    assert BrowserSession.objects.get(pk=session_id).last_activity_at == touched
    assert not Action.objects.filter(session_id=session_id).exists()


def test_an_ended_session_is_410_and_writes_nothing(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    client.delete(f"/v1/computers/{session_id}")  # answers once the browser is gone and time settled
    _refused(client, session_id, 410, "session_ended")


def test_an_expired_session_is_410_ends_there_and_writes_nothing_else(client):
    session_id = client.post("/v1/computers", {}).json()["id"]
    BrowserSession.objects.filter(pk=session_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    _refused(client, session_id, 410, "session_ended")
    row = BrowserSession.objects.get(pk=session_id)
    assert row.status == "terminated" and row.ended_reason == "max_lifetime"  # the one write


def test_a_starting_session_is_409_and_writes_nothing(api_client):
    # The row a create writes before a worker starts its browser (no worker: the fast tier).
    session = session_row(api_client.account)
    _refused(api_client, session.pk, 409, "session_starting")
    row = BrowserSession.objects.get(pk=session.pk)
    assert row.status == "starting" and row.last_activity_at == session.last_activity_at


def test_a_short_balance_is_402_and_writes_nothing(make_client):
    client = make_client(plan="pro", credits=1)  # the first minute, and nothing left
    session_id = client.post("/v1/computers", {}).json()["id"]
    touched = BrowserSession.objects.get(pk=session_id)
    _refused(client, session_id, 402, "insufficient_credits")
    row = BrowserSession.objects.get(pk=session_id)
    assert (row.status, row.last_activity_at) == (touched.status, touched.last_activity_at)
