"""Requests of one account that wait for a result at once (action results, browser starts).

A waiting request holds no web thread (project/awaiting.py: it waits on the event loop), so the
cap is not there to protect threads any more: it is a fairness rule sized by the plan
(`max_waiting_requests`), so that one account's parallel 45 s waits cannot fill the workers'
queues for everyone. Each waiting request holds a slot (project/slots.py); a slot a crashed web
process never gave back drops out after `slot_ttl` seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from accounts.models import Account
from project.awaiting import HeldSlot
from project.exceptions import TooManyRequests
from project.slots import slot_release, slot_take


def _key(account_id: int) -> str:
    return f"bf:inflight:{account_id}"


def inflight_limit(account: Account) -> int:
    """The account's plan's `max_waiting_requests`, else ACCOUNT_MAX_INFLIGHT_REQUESTS (0: none)."""
    limit = account.plan.max_waiting_requests
    return settings.ACCOUNT_MAX_INFLIGHT_REQUESTS if limit is None else limit


def inflight_slot_take(*, account_id: int, limit: int, slot_ttl: float) -> str | None:
    """Take one of the account's `limit` slots; None when all are held."""
    if limit <= 0:
        return ""  # no limit
    return slot_take(key=_key(account_id), limit=limit, ttl=slot_ttl)


def inflight_slot_release(*, account_id: int, token: str) -> None:
    if token:
        slot_release(key=_key(account_id), token=token)


def inflight_slot_hold(*, account: Account, wait_seconds: float) -> HeldSlot:
    """A slot for a request that will wait up to `wait_seconds`; 429 with Retry-After when the
    account already has its plan's number of waiting requests (inflight_limit). The caller gives
    it back: `inflight_slot_release`, or an AwaitedResponse that holds it until its wait ends."""
    limit = inflight_limit(account)
    token = inflight_slot_take(account_id=account.pk, limit=limit, slot_ttl=wait_seconds + 30)
    if token is None:
        raise TooManyRequests(
            f"This account already has {limit} requests waiting for results; wait for one to answer "
            "(or send actions with ?wait=false and poll them).",
            code="too_many_requests_in_flight",
            retry_after=1,
            extra={"limit": limit},
        )
    return HeldSlot(key=_key(account.pk), token=token)


@contextmanager
def inflight_slot_accepting(*, account: Account, wait_seconds: float) -> Iterator[HeldSlot]:
    """A slot for a request that accepts inside the block, then waits off its thread: given back
    here if the accept fails, else the caller hands it to its AwaitedResponse."""
    slot = inflight_slot_hold(account=account, wait_seconds=wait_seconds)
    try:
        yield slot
    except BaseException:
        inflight_slot_release(account_id=account.pk, token=slot.token)
        raise


@contextmanager
def inflight_slot(*, account: Account, wait_seconds: float) -> Iterator[None]:
    """Hold a slot while the request waits on its thread (inflight_slot_hold)."""
    slot = inflight_slot_hold(account=account, wait_seconds=wait_seconds)
    try:
        yield
    finally:
        inflight_slot_release(account_id=account.pk, token=slot.token)
