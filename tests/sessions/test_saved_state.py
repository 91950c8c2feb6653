"""Saved states without a browser: sealing, storing, limits and the purge (database only)."""

from __future__ import annotations

import base64
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Plan
from accounts.plans import seed_plans
from accounts.services import account_create
from project.exceptions import NotFound
from sessions import state_crypto
from sessions.models import BrowserSession, SavedState, SavedStateBlob
from sessions.saved_state import (
    EnvironmentRestoreFailed,
    saved_state_load,
    saved_state_store,
    saved_states_purge,
)
from sessions.state_crypto import StateSealError, state_open, state_seal

STATE = {
    "format": 1,
    "cookies": [{"name": "sid", "value": "secret-cookie-value", "domain": "127.0.0.1", "path": "/"}],
    "origins": {"http://127.0.0.1:8000": {"localStorage": [["k", "secret-storage-value"]], "indexedDB": []}},
    "sessionStorage": {},
}


@pytest.fixture
def account(db):
    seed_plans(Plan)
    return account_create(name="state", plan_name="pro", credits=0)[0]


def _session(account, **options) -> BrowserSession:
    now = timezone.now()
    return BrowserSession.objects.create(
        account=account,
        status="running",
        created_at=now,
        last_activity_at=now,
        expires_at=now + timedelta(hours=1),
        max_lifetime_seconds=3600,
        inactivity_timeout_seconds=120,
        options={"persistent": True, **options},
    )


@pytest.fixture
def rotated_keys(settings):
    def use(*keys: str) -> None:
        settings.SAVED_STATE_KEYS = list(keys)
        state_crypto._keys.cache_clear()

    yield use
    state_crypto._keys.cache_clear()


def _key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


def test_a_sealed_state_opens_only_with_its_own_id_and_untampered(rotated_keys):
    rotated_keys(_key("k1"))
    sealed = state_seal(state_id="comp_a", plaintext=b'{"x": "secret"}')
    assert b"secret" not in sealed
    assert state_open(state_id="comp_a", sealed=sealed) == b'{"x": "secret"}'
    with pytest.raises(StateSealError):
        state_open(state_id="comp_b", sealed=sealed)  # copied onto another state's row
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(StateSealError):
        state_open(state_id="comp_a", sealed=tampered)


def test_key_rotation_opens_old_states_and_seals_new_ones_with_the_first_key(rotated_keys):
    old, new = _key("old"), _key("new")
    rotated_keys(old)
    sealed_before = state_seal(state_id="comp_a", plaintext=b"before")
    rotated_keys(new, old)
    assert state_open(state_id="comp_a", sealed=sealed_before) == b"before"
    assert state_crypto.state_key_id() == "new"
    rotated_keys(new)
    with pytest.raises(StateSealError):
        state_open(state_id="comp_a", sealed=sealed_before)  # the old key was dropped


def test_stored_state_is_encrypted_and_loads_back_for_its_account_only(account):
    saver = _session(account)
    row = saved_state_store(session=saver, state=STATE)
    assert row.status == "ready" and row.origins == ["http://127.0.0.1:8000"] and row.cookie_count == 1
    blob = bytes(SavedStateBlob.objects.get(state=row).data)
    assert b"secret-cookie-value" not in blob and b"secret-storage-value" not in blob
    reader = _session(account, persistent=False, environment_id=saver.pk)
    assert saved_state_load(session=reader) == STATE

    stranger = account_create(name="other", plan_name="pro", credits=0)[0]
    thief = _session(stranger, environment_id=saver.pk)
    with pytest.raises(EnvironmentRestoreFailed):
        saved_state_load(session=thief)


def test_a_failed_save_keeps_the_previous_data(account):
    saver = _session(account)
    saved_state_store(session=saver, state=STATE)
    account.plan.saved_state_max_bytes = 10
    account.plan.save()
    bigger = {**STATE, "cookies": STATE["cookies"] * 50}
    row = saved_state_store(session=saver, state=bigger)
    assert row.status == "failed" and "cap of 10 bytes" in row.failure_reason
    assert "is kept" in row.failure_reason and row.has_data
    reader = _session(account, environment_id=saver.pk)
    assert saved_state_load(session=reader) == STATE


def test_purge_deletes_expired_states_and_their_bytes_only(account):
    expired, kept = _session(account), _session(account)
    saved_state_store(session=expired, state=STATE)
    saved_state_store(session=kept, state=STATE)
    SavedState.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert saved_states_purge() == 1
    assert list(SavedState.objects.values_list("pk", flat=True)) == [kept.pk]
    assert list(SavedStateBlob.objects.values_list("state_id", flat=True)) == [kept.pk]


def test_another_accounts_state_is_not_found(account):
    from sessions.saved_state import saved_state_get

    saver = _session(account)
    saved_state_store(session=saver, state=STATE)
    stranger = account_create(name="other", plan_name="pro", credits=0)[0]
    with pytest.raises(NotFound):
        saved_state_get(account=stranger, environment_id=saver.pk)


def test_a_second_run_of_the_end_save_never_marks_a_saved_state_failed(account):
    from sessions.saved_state import saved_state_save_begin, saved_state_save_failed

    session = _session(account)
    BrowserSession.objects.filter(pk=session.pk).update(status="terminated", ended_at=timezone.now())
    session.refresh_from_db()
    saved_state_store(session=session, state=STATE)
    saved_state_save_begin(session=session)  # a redelivered stop task, after the first one saved
    saved_state_save_failed(session=session, reason="the browser could not be read")
    row = SavedState.objects.get(pk=session.pk)
    assert row.status == "ready" and row.failure_reason == ""


def test_an_expired_state_is_gone_before_the_purge_and_each_use_extends_it(account):
    from sessions.saved_state import saved_state_admit, saved_state_get, saved_state_list
    from sessions.selectors import session_list

    used, expired = _session(account), _session(account)
    saved_state_store(session=used, state=STATE)
    saved_state_store(session=expired, state=STATE)
    week_ago = timezone.now() - timedelta(days=7)
    SavedState.objects.filter(pk=used.pk).update(
        last_used_at=week_ago, expires_at=week_ago + timedelta(days=30)
    )
    SavedState.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    for check in (
        lambda: saved_state_admit(
            account=account, options={"environment_id": expired.pk}, now=timezone.now()
        ),
        lambda: saved_state_get(account=account, environment_id=expired.pk),
    ):
        with pytest.raises(NotFound) as caught:
            check()
        assert caught.value.code == "environment_not_found"
    assert [s.pk for s in saved_state_list(account=account)] == [used.pk]
    assert [s.pk for s in session_list(account=account, status="all", persistent=True)] == [used.pk]

    reader = _session(account, persistent=False, environment_id=used.pk)
    assert saved_state_load(session=reader) == STATE
    row = SavedState.objects.get(pk=used.pk)
    retention = timedelta(days=account.plan.saved_state_retention_days)
    assert row.last_used_at > week_ago + timedelta(days=6)
    assert row.expires_at == row.last_used_at + retention  # a restore moves the expiry


def test_a_state_that_does_not_open_ends_the_start_as_failed_and_refunds_it(db, plans):
    """The worker's side of a failed restore, without a browser: the sealed bytes do not open (a bit
    flipped, as a key no longer configured would do), so the session ends start_failed with the
    restore's reason, which the create turns into 422 environment_restore_failed, and its first
    minute is refunded."""
    from billing.selectors import balance_of
    from sessions.browser_state import session_browser_released
    from sessions.location import BrowserLocation
    from sessions.saved_state import RESTORE_FAILED
    from sessions.services import SessionSpec, session_create
    from workers.services import _restore_or_fail

    owner = account_create(name="restorer", plan_name="pro", credits=1000)[0]
    saver = _session(owner)
    saved_state_store(session=saver, state=STATE)
    blob = SavedStateBlob.objects.get(state_id=saver.pk)
    sealed = bytes(blob.data)
    blob.data = sealed[:-1] + bytes([sealed[-1] ^ 1])
    blob.save()
    before = balance_of(account_id=owner.pk)

    session = session_create(account=owner, spec=SessionSpec(options={"environment_id": saver.pk}))
    assert balance_of(account_id=owner.pk) < before  # the first minute, charged at create
    # A browser of another host: stopping it here is a no-op (its own host's reconcile would).
    handle = BrowserLocation(
        backend="local", webdriver_url="http://127.0.0.1:9", webdriver_session_id="x", host="elsewhere"
    )
    assert _restore_or_fail(session, handle) is None  # failed: nothing left to restore
    session.refresh_from_db()
    assert session.status == "terminated" and session.ended_reason == "start_failed"
    assert session.error == f"{RESTORE_FAILED}: Environment {saver.pk!r} could not be read."
    session_browser_released(session=session)  # what its stop task does once the browser is gone
    assert balance_of(account_id=owner.pk) == before
