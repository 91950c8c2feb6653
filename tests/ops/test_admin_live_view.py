"""The admin's session page embeds a read-only live viewer for a live session (an iframe of a
freshly signed viewer link the viewer page lets this origin frame) and links a ready recording's
replay. Database only: the viewer page itself needs no browser to answer."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from accounts.models import Plan
from accounts.plans import seed_plans
from accounts.services import account_create
from sessions.models import SessionRecording
from tests.support.rows import session_row


@pytest.fixture
def admin_client(db) -> Client:
    user = User.objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def account(db):
    seed_plans(Plan)
    return account_create(name="watched", plan_name="pro", credits=0)[0]


def test_a_live_sessions_admin_page_embeds_a_framable_read_only_viewer(admin_client, account):
    session = session_row(account, status="running", backend="local", host="vm")
    page = admin_client.get(f"/admin/browser_sessions/browsersession/{quote(session.pk)}/change/")
    assert page.status_code == 200
    frame = re.search(r'<iframe src="(/v1/live/[^"]+)"', page.content.decode())
    assert frame, "no live viewer on the page"
    viewer = admin_client.get(frame.group(1))
    assert viewer.status_code == 200
    assert viewer["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in viewer["Content-Security-Policy"]
    assert 'data-interactive="false"' in viewer.content.decode()
    assert "Not recorded." in page.content.decode()


def test_an_ended_sessions_admin_page_has_no_viewer_and_links_its_ready_recording(admin_client, account):
    session = session_row(account, status="terminated", ended_reason="user", ended_at=timezone.now())
    SessionRecording.objects.create(
        session=session,
        account=account,
        created_at=timezone.now(),
        status="ready",
        frame_count=3,
        duration_ms=2500,
    )
    page = admin_client.get(
        f"/admin/browser_sessions/browsersession/{quote(session.pk)}/change/"
    ).content.decode()
    assert "<iframe" not in page
    assert re.search(r'<a href="/v1/replay/[^"]+"[^>]*>Replay</a> \(3 frames, 2.5 s\)', page), page
