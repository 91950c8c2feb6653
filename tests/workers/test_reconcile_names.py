"""Which browsers reconcile keeps (workers/services.py `_live_browser_names`), with a create's
claim of a warm browser committed between its reads, as a concurrent create would."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Plan
from accounts.plans import seed_plans
from accounts.services import account_create
from sessions.models import BrowserSession, WarmBrowser
from workers.services import _live_browser_names


@pytest.mark.django_db
def test_a_warm_browser_claimed_between_reconciles_reads_is_still_kept(tmp_path):
    seed_plans(Plan)
    account = account_create(name="race", plan_name="pro", credits=100)[0]
    now = timezone.now()
    warm = WarmBrowser.objects.create(
        host="host-a", state="ready", created_at=now, profile_dir=str(tmp_path / "pool_x")
    )
    claimed = []

    def claim_after_first_read(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not claimed:
            # The create's one commit: the pool row goes, the session names the browser's path.
            claimed.append(True)
            WarmBrowser.objects.filter(pk=warm.pk).delete()
            BrowserSession.objects.create(
                account=account,
                status="ready",
                created_at=now,
                last_activity_at=now,
                expires_at=now + timedelta(hours=1),
                max_lifetime_seconds=3600,
                inactivity_timeout_seconds=120,
                options={},
                host="host-a",
                profile_dir=str(tmp_path / warm.pk),
            )
        return result

    with connection.execute_wrapper(claim_after_first_read):
        names = _live_browser_names()
    assert claimed
    assert Path(str(tmp_path / warm.pk)).name in names
