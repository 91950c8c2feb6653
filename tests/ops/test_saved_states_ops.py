"""Saved browser states as operators see them (issue 21): a dashboard tile with how many, how
big, and which are saving or failed; the admin lists and deletes them and never shows what they
hold. Database only."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from accounts.models import Plan
from accounts.plans import seed_plans
from accounts.services import account_create
from sessions.models import BrowserSession, SavedState, SavedStateBlob
from sessions.saved_state import saved_state_save_begin, saved_state_save_failed, saved_state_store
from tests.ops.test_dashboard_queries import _tile

SECRET = "do-not-show-4b1d"
STATE = {
    "format": 1,
    "cookies": [{"name": "sid", "value": f"cookie-{SECRET}", "domain": "127.0.0.1", "path": "/"}],
    "origins": {"http://127.0.0.1:8000": {"localStorage": [["k", f"ls-{SECRET}"]], "indexedDB": []}},
    "sessionStorage": {},
}


@pytest.fixture
def account(db):
    seed_plans(Plan)
    return account_create(name="keeper", plan_name="pro", credits=0)[0]


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


def _session(account) -> BrowserSession:
    now = timezone.now()
    return BrowserSession.objects.create(
        account=account,
        status="running",
        created_at=now,
        last_activity_at=now,
        expires_at=now + timedelta(hours=1),
        max_lifetime_seconds=3600,
        inactivity_timeout_seconds=120,
        options={"persistent": True},
    )


def test_the_dashboard_has_a_saved_states_tile(admin_client, account, settings):
    settings.OPS_CHARTS_CACHE_SECONDS = 0
    html = admin_client.get("/admin/ops/").content.decode()
    assert 'data-tile="saved-states"' not in html  # none kept: no tile

    ready, saving, failed = _session(account), _session(account), _session(account)
    row = saved_state_store(session=ready, state=STATE)
    saved_state_save_begin(session=saving)
    saved_state_save_failed(session=failed, reason="the browser could not be read")
    html = admin_client.get("/admin/ops/").content.decode()
    value, detail = _tile(html, "saved-states")
    assert value == "3"
    assert detail == (
        f"{row.stored_bytes / 1000:.1f} KB encrypted in postgres ({row.size_bytes / 1000:.1f} KB of state);"
        " 1 saving, 1 failed"
    )

    settings.SAVED_STATE_STORE = "s3"  # switched: the one in postgres has not moved yet
    _, detail = _tile(admin_client.get("/admin/ops/").content.decode(), "saved-states")
    assert detail.endswith("; 1 still in another store (manage.py saved_states_move)")


def test_the_admin_lists_and_deletes_saved_states_without_their_contents(admin_client, account):
    session = _session(account)
    saved_state_store(session=session, state=STATE)
    sealed = bytes(SavedStateBlob.objects.get(state_id=session.pk).data)

    listing = admin_client.get("/admin/browser_sessions/savedstate/")
    page = admin_client.get(f"/admin/browser_sessions/savedstate/{quote(session.pk)}/change/")
    assert listing.status_code == 200 and page.status_code == 200
    for html in (listing.content.decode(), page.content.decode()):
        assert session.pk in html
        assert SECRET not in html
        for encoded in (base64.b64encode(sealed).decode()[:40], sealed.hex()[:40]):
            assert encoded not in html  # nor the ciphertext
    assert "keeper" in page.content.decode() and "http://127.0.0.1:8000" in page.content.decode()
    assert admin_client.get("/admin/browser_sessions/savedstateblob/").status_code == 404  # not registered

    response = admin_client.post(
        f"/admin/browser_sessions/savedstate/{quote(session.pk)}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not SavedState.objects.filter(pk=session.pk).exists()
    assert not SavedStateBlob.objects.exists()
