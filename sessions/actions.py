"""Accepting browser actions (web side) and reading them back.

An accepted action is a row in `queued` state plus a task on the actions queue. Workers run a
session's queued actions one at a time in `id` order (workers/actions.py); the request that
submitted one waits for its completion signal, or answers 202 when it prefers not to wait.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from accounts.models import Account
from billing.services import action_charge, action_prices
from project.exceptions import NotFound
from sessions.models import Action, BrowserSession
from sessions.services import session_enforce_expiry, session_touch
from workers.completion import completion_wait


def action_event(action_public_id: str) -> str:
    return f"action:{action_public_id}"


def action_submit(*, session: BrowserSession, action: dict[str, Any]) -> Action:
    """Accept a validated, canonical action on a live session, charge it and queue it.

    402 (nothing recorded, nothing runs) when the balance cannot cover it.
    """
    from workers.tasks import actions_run

    session = session_enforce_expiry(session=session)  # an expiry is final, whatever follows
    params = {k: v for k, v in action.items() if k != "type"}
    prices = action_prices(action)
    with transaction.atomic():
        # A refused action (402) changes nothing, the idle timer included: all in one transaction,
        # session row before balance row, the lock order used everywhere.
        session_touch(session=session)
        row = Action.objects.create(
            session=session,
            account_id=session.account_id,
            type=action["type"],
            params=params,
            request_id=str(params.get("request_id", "")),
            price=sum(prices),
            step_prices=prices if action["type"] == "batch" else None,
        )
        action_charge(account_id=session.account_id, session_id=session.pk, action_row=row, amount=row.price)
        transaction.on_commit(lambda: actions_run.delay(session.pk))
    return row


def action_wait(*, action: Action, timeout: float) -> Action:
    """Wait (bounded) for the action to finish; return it as it stands."""
    done = completion_wait(action_event(action.public_id), timeout=timeout)
    if done and "status" in done:
        # The worker sent what it wrote to the row; no need to read it back.
        for field, value in done.items():
            setattr(action, field, datetime.fromisoformat(value) if field == "finished_at" else value)
    else:
        action.refresh_from_db()
    return action


def action_get(*, account: Account, action_id: str) -> Action:
    action = Action.objects.filter(public_id=action_id, account=account).select_related("session").first()
    if action is None:
        raise NotFound(f"Action {action_id!r} not found.", code="action_not_found")
    return action


def action_list(*, session: BrowserSession) -> QuerySet[Action]:
    return Action.objects.filter(session=session).order_by("-id")
