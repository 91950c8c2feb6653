"""The dashboard's pages read a fixed number of queries however many rows there are, and show
their numbers in plain HTML tables (the page without JavaScript)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from accounts.services import account_create
from billing.models import LedgerEntry
from sessions.models import Action, BrowserSession

# Admin session, user and permissions (4), tiles (2 + warm pool + jobs + webhooks + saved states),
# charts (6), live table (1): the same count with 3 sessions and with 40, so nothing is read per row.
DASHBOARD_MAX_QUERIES = 17
SESSION_PAGE_MAX_QUERIES = 7
ACCOUNT_PAGE_MAX_QUERIES = 10


def _seed(*, sessions: int, actions_per_session: int) -> tuple[int, str]:
    account = account_create(name=f"acme-{sessions}", plan_name="pro", credits=1_000_000)[0]
    now = timezone.now()
    rows = BrowserSession.objects.bulk_create(
        BrowserSession(
            account=account,
            status="running" if i % 2 else "terminated",
            ended_reason="" if i % 2 else "user",
            ended_at=None if i % 2 else now - timedelta(minutes=1),
            host=f"worker-{i % 3}",
            created_at=now - timedelta(minutes=30 + i),
            started_at=now - timedelta(minutes=30 + i) + timedelta(seconds=1),
            last_activity_at=now,
            expires_at=now + timedelta(hours=1),
            idle_expires_at=now + timedelta(minutes=2),
            max_lifetime_seconds=3600,
            inactivity_timeout_seconds=120,
        )
        for i in range(sessions)
    )
    actions = Action.objects.bulk_create(
        Action(
            session=session,
            account=account,
            type=("click", "navigate", "screenshot")[j % 3],
            status="failed" if j == 0 else "succeeded",
            price=2,
            started_at=now - timedelta(seconds=10),
            finished_at=now - timedelta(seconds=10) + timedelta(milliseconds=50 + j),
        )
        for session in rows
        for j in range(actions_per_session)
    )
    LedgerEntry.objects.bulk_create(
        LedgerEntry(
            account=account,
            kind="action",
            amount=-2,
            balance_after=0,
            session_id=action.session_id,
            action=action,
            idempotency_key=f"seed:{action.pk}",
        )
        for action in actions
    )
    return account.pk, rows[1].pk


@pytest.fixture
def staff(db, settings):
    settings.OPS_CHARTS_CACHE_SECONDS = 0  # every page reads its own rows
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    # The pages need the view permission on sessions (tests/ops/test_admin_permissions.py).
    user.user_permissions.set(Permission.objects.filter(codename="view_browsersession"))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("sessions", [3, 40])
def test_dashboard_pages_read_a_bounded_number_of_queries(staff, django_assert_max_num_queries, sessions):
    account_id, session_id = _seed(sessions=sessions, actions_per_session=5)
    for range_key in ("24h", "7d", "30d"):
        with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES):
            page = staff.get(f"/admin/ops/?range={range_key}")
        assert page.status_code == 200
    html = staff.get("/admin/ops/").content.decode()
    live = sessions // 2
    assert re.search(
        r'data-tile="sessions-running">\s*<div[^>]*>Sessions running</div>\s*'
        rf'<div class="ops-tile-value">{live}</div>',
        html,
    )
    # Every live session is a row of the live table, with its host and last action.
    assert html.count('<tr data-session="') == live
    assert "worker-1" in html
    # The numbers are in the page as tables: actions by type and status, top accounts.
    assert re.search(r"<td>click</td><td>\d+</td>", html)
    assert f"acme-{sessions}" in html

    with django_assert_max_num_queries(SESSION_PAGE_MAX_QUERIES):
        page = staff.get(f"/admin/ops/sessions/{session_id}/")
    assert page.status_code == 200
    assert page.content.decode().count("<tr data-action=") == 5

    with django_assert_max_num_queries(ACCOUNT_PAGE_MAX_QUERIES):
        page = staff.get(f"/admin/ops/accounts/{account_id}/")
    assert page.status_code == 200
    assert page.content.decode().count('<a href="/admin/ops/sessions/') == min(sessions, 50)


def test_unknown_session_and_account_are_404(staff):
    assert staff.get("/admin/ops/sessions/comp_nope/").status_code == 404
    assert staff.get("/admin/ops/accounts/999999/").status_code == 404


def test_terminate_needs_post(staff):
    assert staff.get("/admin/ops/sessions/comp_x/terminate/").status_code == 405


def test_non_staff_users_are_sent_to_the_login_page(db):
    user = User.objects.create_user("someone", password="pw")
    client = Client()
    client.force_login(user)
    for url in ("/admin/ops/", "/admin/ops/accounts/1/", "/admin/ops/sessions/comp_x/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    assert Client().post("/admin/ops/sessions/comp_x/terminate/").status_code in (302, 403)


def test_long_range_charts_are_kept_for_a_while_and_24h_never(staff, settings, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from project.redis import get_redis

    _seed(sessions=4, actions_per_session=2)
    settings.OPS_CHARTS_CACHE_SECONDS = 60
    get_redis().delete("bf:ops:charts:30d", "bf:ops:charts:24h")

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff.get(url).status_code == 200
        return len(captured)

    first, second = queries("/admin/ops/?range=30d"), queries("/admin/ops/?range=30d")
    assert second == first - 6  # the six chart statements
    assert queries("/admin/ops/?range=24h") == queries("/admin/ops/?range=24h") == first
    get_redis().delete("bf:ops:charts:30d")


def _tile(html: str, key: str) -> tuple[str, str]:
    match = re.search(
        rf'data-tile="{key}">\s*<div[^>]*>[^<]*</div>\s*<div class="ops-tile-value">([^<]*)</div>\s*'
        r'<div class="ops-tile-detail">([^<]*)</div>',
        html,
    )
    assert match, f"no {key} tile"
    return match.group(1), match.group(2)


def test_the_warm_pool_and_jobs_have_tiles(staff, settings):
    from jobs.models import Job
    from sessions.models import WarmBrowser

    settings.BROWSER_POOL_SIZE = 2
    now = timezone.now()
    WarmBrowser.objects.bulk_create(
        [
            WarmBrowser(host="host-a", state="ready", created_at=now, ready_at=now - timedelta(seconds=90)),
            WarmBrowser(host="host-a", state="ready", created_at=now, ready_at=now),
            WarmBrowser(host="host-b", state="starting", created_at=now),
        ]
    )
    account = account_create(name="jobs", plan_name="pro", credits=1000)[0]
    Job.objects.bulk_create(
        [
            Job(account=account, status=status, page_price=1)
            for status in ("running", "queued", "queued", "completed")
        ]
    )
    html = staff.get("/admin/ops/").content.decode()
    value, detail = _tile(html, "warm-pool")
    assert value == "2"
    assert "host-a 2" in detail and "host-b 0" in detail and "1 starting" in detail
    assert re.search(r"oldest (89|9\d) s", detail), detail
    assert _tile(html, "jobs") == ("1", "2 queued")


def test_failing_webhook_deliveries_have_a_tile(staff):
    from webhooks.models import Delivery, Endpoint, Event

    html = staff.get("/admin/ops/").content.decode()
    assert 'data-tile="webhooks"' not in html and "Webhook deliveries" not in html  # no endpoint yet
    account = account_create(name="hooks", plan_name="pro", credits=1000)[0]
    endpoint = Endpoint.objects.create(
        account=account, url="http://127.0.0.1/x", failing_since=timezone.now()
    )
    now = timezone.now()
    for n, status in enumerate(("failed", "delivered", "delivered", "delivered", "pending")):
        event = Event.objects.create(account=account, type="webhook.test", payload={"n": n})
        Delivery.objects.create(event=event, endpoint=endpoint, status=status, next_attempt_at=now)
    html = staff.get("/admin/ops/").content.decode()
    assert _tile(html, "webhooks") == ("1", "25.0% of 4 settled; 1 pending; 1 endpoints failing")


def test_the_proxy_pool_has_a_tile_of_todays_bytes_by_member_and_the_members_down(staff, settings):
    import json

    from project.proxy_pool import POOL_HEALTH_KEY, pool_bytes_key
    from project.redis import get_redis
    from sessions.proxies import advanced_pool

    redis = get_redis()
    us, de = advanced_pool()  # tests/support/test_env.py: us, then de
    today = pool_bytes_key(timezone.now().date())
    yesterday = pool_bytes_key((timezone.now() - timedelta(days=1)).date())
    health = {m.server.split("://", 1)[1]: m for m in (us, de)}
    try:
        redis.hset(today, mapping={de.name: 2_500_000, us.name: 40_000})
        redis.hset(yesterday, mapping={de.name: 9_000_000})  # not today's
        host_port = next(key for key, member in health.items() if member is us)
        redis.hset(POOL_HEALTH_KEY, host_port, json.dumps({"up": False, "at": 0}))
        html = staff.get("/admin/ops/").content.decode()
        assert _tile(html, "proxy-pool") == (
            "2.5 MB",
            f"{us.name} 40.0 KB, {de.name} 2.5 MB; down: {us.name}",
        )
        settings.ADVANCED_PROXY_URLS = []
        assert 'data-tile="proxy-pool"' not in staff.get("/admin/ops/").content.decode()  # no pool
    finally:
        redis.delete(today, yesterday)
        redis.hdel(POOL_HEALTH_KEY, *health)


def test_an_actions_queue_depth_counts_its_drain_requests(db):
    from ops.selectors import queue_depths
    from project.queues import drain_list
    from project.redis import get_redis

    redis = get_redis()
    redis.delete("actions", drain_list("actions"))  # no worker in the fast tier takes them
    try:
        redis.lpush(drain_list("actions"), "comp_a", "comp_b")  # actions are drain requests
        redis.lpush("actions", "a task message")  # and the actions pool's Celery tasks
        depths = queue_depths()
        assert depths["actions"] == 3
        assert depths["lifecycle"] is not None  # a queue without drain requests: its list alone
    finally:
        redis.delete("actions", drain_list("actions"))
