"""The worker's side of upstream proxies (docs/proxies.md): a warm pool browser, started without a
route, gets its session's route when a create claims it, before the session is ready; a start
without a proxy writes a direct route over what a uid's last browser left; the stop removes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from accounts.services import account_create
from sessions import proxies
from sessions.models import BrowserSession, SessionStatus
from tests.support.rows import session_row
from workers import services
from workers.browser import Display, proxy_routes
from workers.browser.local import LocalBackend

# Starts real browsers through the egress filter; rows seen by no other process.
pytestmark = pytest.mark.usefixtures("egress_filter")

SECRET = "claim-s3cret"


def _route(uid: int) -> Path:
    return Path(settings.EGRESS_ROUTES_DIR) / f"uid-{uid}.json"


def _direct(uid: int) -> bool:
    return json.loads(_route(uid).read_text()) == proxy_routes.DIRECT


def test_a_claimed_warm_browser_gets_its_sessions_route_before_it_is_ready(db, plans):
    backend = LocalBackend()
    handle = backend.start(session_id="pool_claimtest0001", display=Display())
    try:
        uid = proxy_routes.browser_uid(handle.profile_dir)
        assert uid is not None, "the test worker runs as root with sandbox uids"
        assert _direct(uid)  # the pool started it without a proxy
        account, _ = account_create(name="claim", plan_name="pro", credits=1000)
        session = session_row(account)
        rules = proxies.proxies_check([{"server": f"http://bob:{SECRET}@127.0.0.1:3128"}])
        BrowserSession.objects.filter(pk=session.pk).update(
            proxy_config=proxies.proxy_config_seal(session_id=session.pk, config={"rules": rules}),
            **handle.columns(),
        )
        services.session_browser_adopt(session_id=session.pk)
        session.refresh_from_db()
        assert session.status == SessionStatus.READY
        document = json.loads(_route(uid).read_text())
        assert document["meter"] == session.pk
        assert document["rules"][0]["password"] == SECRET and _route(uid).stat().st_mode & 0o777 == 0o600
        # Started again without a proxy: the old lease ended with its route, the new uid goes direct.
        handle = backend.start(session_id="pool_claimtest0001", display=Display())
        old_uid, uid = uid, proxy_routes.browser_uid(handle.profile_dir)
        assert uid is not None and _direct(uid)
        assert old_uid == uid or not _route(old_uid).exists()
        proxy_routes.routes_write(uid=uid, document=document)
    finally:
        backend.stop(handle, session_id="pool_claimtest0001")
    assert not _route(uid).exists()
