"""Saved browser state: Tzafon's `persistent` and `environment_id` (docs/saved-state.md).

A persistent session's state is saved under its own id when it ends (and on request while it
runs); `environment_id: <that id>` restores it into a new session. The web side checks and
admits; workers export and import through DevTools (workers/browser/saved_state.py) and hand the
plaintext here, which seals it (sessions/state_crypto.py) into the store (sessions/state_store.py).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Account, Plan
from project.completion import completion_publish, completion_wait
from project.exceptions import ApplicationError, Busy, InvalidInput, NotFound
from sessions import dispatch
from sessions.models import (
    LIVE_STATUSES,
    Action,
    BrowserSession,
    EndedReason,
    SavedState,
    SavedStateStatus,
    SessionStatus,
)
from sessions.state_crypto import StateSealError, state_open, state_seal
from sessions.state_store import StateStoreError, state_bytes_delete, state_bytes_get, state_bytes_put

logger = logging.getLogger(__name__)

# A session whose start failed because its saved state did not restore has this error prefix.
RESTORE_FAILED = "environment restore failed"


class EnvironmentInUse(Busy):
    retryable = False  # final while the writer runs; the SDK must not retry it by itself
    code = "environment_in_use"


class SessionNotPersistent(Busy):
    retryable = False
    code = "session_not_persistent"


class EnvironmentRestoreFailed(ApplicationError):
    status_code = 422
    code = "environment_restore_failed"


def _not_found(environment_id: str) -> NotFound:
    return NotFound(f"Environment {environment_id!r} not found.", code="environment_not_found")


def is_persistent(session: BrowserSession) -> bool:
    return bool(session.options.get("persistent"))


def restores_from(session: BrowserSession) -> str:
    return str(session.options.get("environment_id") or "")


def _expiry(plan: Plan, at: datetime) -> datetime:
    return at + timedelta(days=plan.saved_state_retention_days)


def _save_pending(*, account: Account, environment_id: str) -> bool:
    """The session ended and its end-of-session save has not run yet (or runs now)."""
    if SavedState.objects.filter(pk=environment_id, account=account, status=SavedStateStatus.SAVING).exists():
        return True
    return (
        BrowserSession.objects.filter(
            pk=environment_id,
            account=account,
            status=SessionStatus.TERMINATED,
            browser_released_at__isnull=True,
            options__persistent=True,
        )
        .exclude(ended_reason__in=[EndedReason.CRASHED, EndedReason.START_FAILED])
        .exists()
    )


def saved_state_wait_saved(*, account: Account, environment_id: str, timeout: float) -> None:
    """Before a create restores `environment_id`: wait (bounded) for a save still under way, so that a
    create right after a DELETE gets the state the DELETE saved. 409 (retried by the SDK) if it
    takes longer."""
    deadline = time.monotonic() + timeout
    while _save_pending(account=account, environment_id=environment_id):
        if time.monotonic() >= deadline:
            raise Busy(
                f"The state of environment {environment_id!r} is still being saved; try again.",
                code="environment_saving",
                retry_after=1,
            )
        time.sleep(0.05)


def saved_state_admit(*, account: Account, options: dict[str, Any], now: datetime) -> None:
    """Checks of a create's `environment_id` and `persistent`, under the account's row lock (which
    serializes creates of one account, so two writers of one environment cannot both pass)."""
    environment_id = str(options.get("environment_id") or "")
    persistent = bool(options.get("persistent"))
    plan = account.plan
    if environment_id:
        state = SavedState.objects.filter(pk=environment_id, account=account, expires_at__gt=now).first()
        if state is None:
            raise _not_found(environment_id)
        if not state.has_data:
            raise InvalidInput(
                f"Environment {environment_id!r} holds no saved state: "
                f"{state.failure_reason or 'not saved yet'}.",
                code="environment_empty",
            )
        if (
            persistent
            and BrowserSession.objects.filter(
                account=account,
                status__in=LIVE_STATUSES,
                options__persistent=True,
                options__environment_id=environment_id,
            ).exists()
        ):
            raise EnvironmentInUse(
                f"A persistent session restored from environment {environment_id!r} is running: one "
                "writer at a time. Create without `persistent` to read it, or end that session first."
            )
    if persistent and plan.max_saved_states is not None:
        kept = SavedState.objects.filter(account=account).count()
        if kept >= plan.max_saved_states:
            raise InvalidInput(
                f"The {plan.name} plan keeps {plan.max_saved_states} saved states and this account has "
                f"{kept}: delete one (DELETE /v1/environments/{{id}}) before creating a persistent session.",
                code="saved_state_limit",
                extra={"limit": plan.max_saved_states},
            )


def _state_row(session: BrowserSession, now: datetime) -> SavedState:
    plan = Account.objects.select_related("plan").get(pk=session.account_id).plan
    state, _ = SavedState.objects.get_or_create(
        pk=session.pk,
        defaults={
            "account_id": session.account_id,
            "restored_from": restores_from(session),
            "created_at": now,
            "last_used_at": now,
            "expires_at": _expiry(plan, now),
        },
    )
    return state


def saved_state_save_begin(*, session: BrowserSession) -> None:
    """A save of the session's state starts (its status shows `saving`)."""
    now = timezone.now()
    _state_row(session, now)
    SavedState.objects.filter(pk=session.pk).update(status=SavedStateStatus.SAVING)


def saved_state_saved_since_end(*, session: BrowserSession) -> bool:
    """An ended session's state was saved after its end already (a stop task that ran twice)."""
    if session.ended_at is None:
        return False
    return SavedState.objects.filter(pk=session.pk, saved_at__gte=session.ended_at).exists()


def saved_state_save_failed(*, session: BrowserSession, reason: str) -> None:
    """The save did not happen: status `failed` with why; the previous save's data stays."""
    if saved_state_saved_since_end(session=session):
        # Another run of the stop saved it: its success stands (and this run's `saving` goes).
        SavedState.objects.filter(pk=session.pk, status=SavedStateStatus.SAVING).update(
            status=SavedStateStatus.READY
        )
        return
    now = timezone.now()
    state = _state_row(session, now)
    if state.has_data:
        reason = f"{reason}; the state saved at {state.saved_at:%Y-%m-%dT%H:%M:%SZ} is kept"
    SavedState.objects.filter(pk=session.pk).update(
        status=SavedStateStatus.FAILED, failure_reason=reason[:500]
    )


def saved_state_store(*, session: BrowserSession, state: dict[str, Any]) -> SavedState:
    """Seal and store the exported state as the session's saved state, whole or not at all."""
    now = timezone.now()
    plaintext = json.dumps(state, separators=(",", ":")).encode()
    plan = Account.objects.select_related("plan").get(pk=session.account_id).plan
    if len(plaintext) > plan.saved_state_max_bytes:
        saved_state_save_failed(
            session=session,
            reason=(
                f"the state is {len(plaintext)} bytes, above the {plan.name} plan's cap of "
                f"{plan.saved_state_max_bytes} bytes"
            ),
        )
        return SavedState.objects.get(pk=session.pk)
    sealed = state_seal(state_id=session.pk, plaintext=plaintext)
    with transaction.atomic():
        row = _state_row(session, now)
        row = SavedState.objects.select_for_update().get(pk=row.pk)
        state_bytes_put(row, sealed)
        row.status = SavedStateStatus.READY
        row.failure_reason = ""
        row.size_bytes = len(plaintext)
        row.stored_bytes = len(sealed)
        row.origins = sorted(set(state.get("origins", {})) | set(state.get("sessionStorage", {})))
        row.cookie_count = len(state.get("cookies", []))
        row.saved_at = now
        row.last_used_at = now
        row.expires_at = _expiry(plan, now)
        row.save()
    return row


def saved_state_crashed(*, session: BrowserSession) -> None:
    """A persistent session whose browser crashed cannot be saved: it keeps what it had, and says so."""
    saved_state_save_failed(session=session, reason="the browser crashed before its state could be saved")


def saved_state_load(*, session: BrowserSession) -> dict[str, Any] | None:
    """The state the session restores (its `environment_id`), or None when it restores nothing.

    Raises EnvironmentRestoreFailed when it cannot be read (missing, a key no longer configured).
    """
    environment_id = restores_from(session)
    if not environment_id:
        return None
    return saved_state_read(account_id=session.account_id, environment_id=environment_id)


def saved_state_read(*, account_id: int, environment_id: str) -> dict[str, Any]:
    """The account's saved state, opened (a session's restore, a batch job's browsers)."""
    state = SavedState.objects.filter(pk=environment_id, account_id=account_id).first()
    try:
        sealed = state_bytes_get(state) if state is not None else None
    except StateStoreError as exc:
        logger.error("saved state %s could not be read from its store: %s", environment_id, exc)
        raise EnvironmentRestoreFailed(f"Environment {environment_id!r} could not be read.") from exc
    if state is None or sealed is None:
        raise EnvironmentRestoreFailed(f"Environment {environment_id!r} has no stored state.")
    try:
        data: dict[str, Any] = json.loads(state_open(state_id=state.pk, sealed=sealed))
    except (StateSealError, ValueError) as exc:
        logger.error("saved state %s does not open: %s", environment_id, exc)  # operators: keys
        raise EnvironmentRestoreFailed(f"Environment {environment_id!r} could not be read.") from exc
    now = timezone.now()
    plan = Account.objects.select_related("plan").get(pk=account_id).plan
    SavedState.objects.filter(pk=state.pk).update(last_used_at=now, expires_at=_expiry(plan, now))
    return data


def saved_state_require_readable(*, account: Account, environment_id: str) -> None:
    """What a reader of `environment_id` needs (a batch job's): 404 or 400 before anything starts."""
    state = SavedState.objects.filter(
        pk=environment_id, account=account, expires_at__gt=timezone.now()
    ).first()
    if state is None:
        raise _not_found(environment_id)
    if not state.has_data:
        raise InvalidInput(
            f"Environment {environment_id!r} holds no saved state: "
            f"{state.failure_reason or 'not saved yet'}.",
            code="environment_empty",
        )


def saved_state_origins_hint(*, session: BrowserSession) -> list[str]:
    """Origins whose storage the save should look at besides the open tabs' (and their history):
    the pages the session's actions were on, and the origins of the state it was restored from."""
    urls = {
        str(url)
        for url in Action.objects.filter(session=session)
        .exclude(page_context__isnull=True)
        .values_list("page_context__url", flat=True)[:1000]
        if url
    }
    urls |= {
        str(url)
        for url in Action.objects.filter(session=session, type="navigate").values_list(
            "params__url", flat=True
        )[:1000]
        if url
    }
    environment_id = restores_from(session)
    if environment_id:
        origins = SavedState.objects.filter(pk=environment_id).values_list("origins", flat=True).first()
        urls |= set(origins or [])
    return sorted(u for u in urls if urlsplit(u).scheme in ("http", "https"))


# --- reads and the API's operations -------------------------------------------------------------


def saved_state_get(*, account: Account, environment_id: str) -> SavedState:
    """The account's state; an expired one (not purged yet) is as gone as for a create."""
    state = SavedState.objects.filter(
        pk=environment_id, account=account, expires_at__gt=timezone.now()
    ).first()
    if state is None:
        raise _not_found(environment_id)
    return state


def saved_state_list(*, account: Account, limit: int = 100) -> QuerySet[SavedState]:
    return SavedState.objects.filter(account=account, expires_at__gt=timezone.now()).order_by(
        "-last_used_at"
    )[:limit]


def saved_state_delete(*, account: Account, environment_id: str) -> None:
    """Forget a saved state (its bytes first). A running session restored from it is not touched."""
    with transaction.atomic():
        state = SavedState.objects.select_for_update().filter(pk=environment_id, account=account).first()
        if state is None:
            raise _not_found(environment_id)
        state_bytes_delete(state)
        state.delete()


def saved_states_purge(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Delete saved states unused past their plan's retention (Beat); return how many."""
    now = now or timezone.now()
    purged = 0
    while True:
        with transaction.atomic():
            rows = list(
                SavedState.objects.select_for_update(skip_locked=True).filter(expires_at__lte=now)[
                    :batch_size
                ]
            )
            for row in rows:
                state_bytes_delete(row)
                row.delete()
        purged += len(rows)
        if len(rows) < batch_size:
            return purged


def saved_event(session_id: str, token: str) -> str:
    return f"session-state-saved:{session_id}:{token}"


def saved_state_save_now(*, session: BrowserSession, timeout: float) -> SavedState:
    """POST /computers/{id}/state: have the session's worker save its state now and wait for it.

    Idempotent: a second save stores the same (or newer) state under the same id.
    """
    if not is_persistent(session):
        raise SessionNotPersistent(
            f"Session {session.pk} was not created with `persistent: true`: it has no saved state."
        )
    token = secrets.token_hex(8)
    dispatch.state_save(session.pk, token)
    completion_wait(saved_event(session.pk, token), timeout=timeout)
    state = SavedState.objects.filter(pk=session.pk).first()
    if state is None or state.status == SavedStateStatus.SAVING:
        raise Busy("The state is still being saved; try again.", code="environment_saving", retry_after=1)
    return state


def saved_state_save_done(*, session_id: str, token: str) -> None:
    completion_publish(saved_event(session_id, token), {"ok": True})
