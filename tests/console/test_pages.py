"""The console's pages on rows built directly (no worker, no browser): what each page shows,
and that another account's ids are 404 on every page."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from django.test import Client as PageClient
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Job
from tests.console.conftest import Tenant, World


def _api(tenant: Tenant) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant.raw_key}")
    return api


def _inline_code(html: str) -> list[str]:
    """Inline scripts (a JSON data block is data, not code), <style> elements, style="" attributes."""
    scripts = [
        tag
        for tag in re.findall(r"<script\b[^>]*>", html)
        if "src=" not in tag and 'type="application/json"' not in tag
    ]
    return (
        scripts
        + re.findall(r"<style\b", html)
        + re.findall(r"\sstyle=", html)
        + re.findall(r"\son\w+=", html)
    )


def _pages_of(world: World) -> list[str]:
    """Every page (GET) of the console that names an object of the world."""
    return [
        reverse("console:session", args=[world.session_id]),
        reverse("console:job", args=[world.job_id]),
        reverse("console:job-results", args=[world.job_id, "csv"]),
        reverse("console:job-results", args=[world.job_id, "jsonl"]),
        reverse("console:job-results", args=[world.job_id, "json"]),
    ]


LIST_PAGES = [
    "console:overview",
    "console:overview-numbers",
    "console:usage",
    "console:usage-csv",
    "console:sessions",
    "console:jobs",
    "console:billing",
    "console:keys",
]


def test_every_page_renders_for_a_member_without_inline_code(tenant: Tenant, world: World) -> None:
    pages = tenant.pages(as_owner=False)
    for path in [reverse(name) for name in LIST_PAGES] + _pages_of(world):
        response = pages.get(path)
        assert response.status_code == 200, path
        assert "Content-Security-Policy" in response, path
        if response["Content-Type"].startswith("text/html"):
            assert _inline_code(response.content.decode()) == [], path


def test_another_accounts_ids_are_404_on_every_page(
    tenant: Tenant, world: World, stranger_world: World
) -> None:
    pages = tenant.pages()
    for path in _pages_of(stranger_world):
        response = pages.get(path)
        assert response.status_code == 404, path
        assert stranger_world.session_id.encode() not in response.content
    for path in (
        reverse("console:session-live", args=[stranger_world.session_id]),
        reverse("console:job-cancel", args=[stranger_world.job_id]),
    ):
        assert pages.post(path).status_code == 404, path
    # An id that exists nowhere looks the same, and so does an address that is no page.
    unknown = pages.get("/console/no-such-page/")
    assert unknown.status_code == 404 and b"Not found" in unknown.content
    assert pages.get(reverse("console:session", args=["comp_nothing"])).status_code == 404
    assert pages.get(reverse("console:job", args=["job_0"])).status_code == 404
    # The stranger's job was not cancelled by the attempt.
    assert Job.objects.get(pk=stranger_world.job_id).status == "queued"
    # Lists show only the member's own objects.
    for name in ("console:sessions", "console:jobs"):
        html = pages.get(reverse(name)).content
        assert stranger_world.session_id.encode() not in html and stranger_world.job_id.encode() not in html


def test_the_overview_shows_balance_spending_and_burn_rate(tenant: Tenant, world: World) -> None:
    api = _api(tenant)
    balance = api.get("/v1/account").json()["balance"]
    html = tenant.pages().get("/console/").content.decode()
    assert re.search(rf'id="balance">{balance}<', html)
    # Spending is the usage report's (a job's hold took credits aside, it is not spending).
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    spent = api.get("/v1/usage", {"from": midnight.isoformat(), "to": timezone.now().isoformat()}).json()
    assert spent["credits_spent"] == 1 + 3 + spent["credits_by_kind"]["session_time"]
    assert re.search(rf'id="spent-today">{spent["credits_spent"]}<', html)
    assert "Lasts about" in html
    fragment = tenant.pages().get("/console/overview/numbers/")
    assert fragment.status_code == 200 and f'id="balance">{balance}<' in fragment.content.decode()
    assert b"<html" not in fragment.content


def test_usage_page_and_csv_hold_v1_usages_numbers(tenant: Tenant, world: World) -> None:
    pages = tenant.pages()
    api = _api(tenant)
    for key in ("24h", "7d", "30d"):
        html = pages.get(f"/console/usage/?range={key}").content.decode()
        data = json.loads(
            re.search(r'<script id="usage-data" type="application/json">(.*?)</script>', html, re.S)[1]
        )
        assert data["credits_spent"] > 0
        expected = api.get(
            "/v1/usage", {"from": data["from"], "to": data["to"], "group_by": data["group_by"]}
        ).json()
        assert data == expected
        csv_link = re.search(r'id="usage-csv" href="([^"]+)"', html)[1].replace("&amp;", "&")
        rows = list(csv.reader(io.StringIO(pages.get(csv_link).content.decode())))
        assert rows[0] == ["section", "key", "credits", "session_minutes"]
        assert rows[1] == [
            "total",
            f"{expected['from']}/{expected['to']}",
            str(expected["credits_spent"]),
            str(expected["session_minutes"]),
        ]
        assert {r[1]: int(r[2]) for r in rows if r[0] == "kind"} == expected["credits_by_kind"]
        assert {r[1]: int(r[2]) for r in rows if r[0] == "action_type"} == expected["credits_by_action_type"]
        assert [[r[1], int(r[2]), int(r[3])] for r in rows if r[0] == "bucket"] == [
            [b["start"], b["credits"], b["session_minutes"]] for b in expected["buckets"]
        ]
    # The ledger agrees: its charges (not the job's hold, which is set aside) are the spending.
    ledger = api.get("/v1/ledger", {"limit": 200}).json()["results"]
    charged = -sum(
        e["amount"] for e in ledger if e["kind"] in ("action", "session_time", "refund", "job_page")
    )
    assert expected["credits_spent"] == charged == 5


def test_session_page_shows_the_timeline_with_costs_and_screenshot(tenant: Tenant, world: World) -> None:
    html = tenant.pages().get(f"/console/sessions/{world.session_id}/").content.decode()
    assert 'id="ended-reason">user<' in html
    assert html.index(world.action_ids[0]) < html.index(world.action_ids[1])  # oldest first
    assert f"/v1/screenshots/{world.screenshot_token}.png" in html
    assert 'id="session-cost">5 credits<' in html  # 1 + 3 + one minute at 1
    listing = tenant.pages().get("/console/sessions/?status=terminated").content.decode()
    assert world.session_id in listing
    assert world.session_id not in tenant.pages().get("/console/sessions/?status=live").content.decode()


def test_job_page_counts_failures_and_downloads(tenant: Tenant, world: World) -> None:
    pages = tenant.pages()
    html = pages.get(f"/console/jobs/{world.job_id}/").content.decode()
    assert "http_error" in html and "HTTP 500" in html
    console_csv = b"".join(pages.get(f"/console/jobs/{world.job_id}/results.csv").streaming_content)
    api_csv = b"".join(
        _api(tenant).get(f"/v1/jobs/{world.job_id}/results", {"format": "csv"}).streaming_content
    )
    assert console_csv == api_csv.replace(b"http://testserver", b"http://testserver")
    rows = list(csv.DictReader(io.StringIO(console_csv.decode())))
    assert [r["status"] for r in rows] == ["succeeded", "failed"] and rows[0]["title"] == "'=One"
    as_json = json.loads(b"".join(pages.get(f"/console/jobs/{world.job_id}/results.json").streaming_content))
    as_jsonl = [
        json.loads(line)
        for line in b"".join(
            pages.get(f"/console/jobs/{world.job_id}/results.jsonl").streaming_content
        ).splitlines()
    ]
    assert as_json == as_jsonl and len(as_json) == 2
    assert pages.get(f"/console/jobs/{world.job_id}/results.xml").status_code == 404


def test_cancel_a_job_from_its_page(tenant: Tenant, world: World) -> None:
    pages = tenant.pages()
    assert pages.get(f"/console/jobs/{world.job_id}/cancel/").status_code == 405
    response = pages.post(f"/console/jobs/{world.job_id}/cancel/")
    assert response.status_code == 302
    assert Job.objects.get(pk=world.job_id).status in ("cancelling", "cancelled")
    # Cancelling again says so, changes nothing.
    page = pages.post(f"/console/jobs/{world.job_id}/cancel/", follow=True).content.decode()
    assert "already ended" in page or "cancelling" in page


def test_the_console_has_its_own_rate_limit(tenant: Tenant, settings: Any) -> None:
    settings.CONSOLE_REQUESTS_PER_MINUTE = 10
    pages = tenant.pages()
    # 25 requests span at most two one-minute windows, so one window gets more than 10 of them.
    codes = [pages.get("/console/overview/numbers/").status_code for _ in range(25)]
    assert codes[0] == 200 and 429 in codes and codes.count(200) <= 20
    assert int(pages.get("/console/").headers["Retry-After"]) >= 1


def test_a_member_of_two_accounts_sees_the_first(tenant: Tenant, stranger: Tenant) -> None:
    from accounts.services import member_add

    member_add(account=stranger.account, email="owner@acme.test", role="member")
    html = tenant.pages().get("/console/").content.decode()
    assert "acme" in html and "globex" not in html


@pytest.mark.parametrize(
    "path", ["/console", "/console/usage/?range=bogus", "/console/sessions/?status=bogus&offset=x"]
)
def test_odd_addresses_do_not_fail(tenant: Tenant, path: str) -> None:
    response = tenant.pages().get(path)
    assert response.status_code in (200, 301, 302)


def test_signed_out_pages_redirect_to_sign_in(world: World) -> None:
    for path in [reverse(name) for name in LIST_PAGES] + _pages_of(world):
        response = PageClient().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/console/login/"), path


def test_a_running_jobs_page_refreshes_its_progress(tenant: Tenant, world: World) -> None:
    pages = tenant.pages()
    html = pages.get(f"/console/jobs/{world.job_id}/").content.decode()
    assert f'data-refresh-url="/console/jobs/{world.job_id}/?fragment=1"' in html
    fragment = pages.get(f"/console/jobs/{world.job_id}/?fragment=1").content.decode()
    assert 'id="job-status"' in fragment and "<html" not in fragment


def test_a_live_sessions_page_refreshes_its_timeline(tenant: Tenant) -> None:
    from tests.support.rows import session_row

    session = session_row(tenant.account, status="running")
    pages = tenant.pages()
    html = pages.get(f"/console/sessions/{session.pk}/").content.decode()
    assert (
        f'data-refresh-url="/console/sessions/{session.pk}/?fragment=1"' in html and 'id="live-view"' in html
    )
    fragment = pages.get(f"/console/sessions/{session.pk}/?fragment=1").content.decode()
    assert 'id="timeline"' in fragment and "<html" not in fragment and 'id="live-view"' not in fragment


def test_usage_per_key_holds_v1_usages_numbers_for_that_key(
    tenant: Tenant, world: World, stranger: Tenant
) -> None:
    from accounts.models import ApiKey
    from billing.models import LedgerEntry

    pages = tenant.pages()
    api = _api(tenant)
    key = ApiKey.objects.filter(account=tenant.account).order_by("pk").first()
    assert key is not None
    # The world's rows were written directly, without a key: its action charges were this key's.
    charged = LedgerEntry.objects.filter(account=tenant.account, kind=LedgerEntry.Kind.ACTION)
    assert charged.update(api_key=key) > 0
    html = pages.get(f"/console/usage/?range=7d&key={key.pk}").content.decode()
    data = json.loads(
        re.search(r'<script id="usage-data" type="application/json">(.*?)</script>', html, re.S)[1]
    )
    expected = api.get(
        "/v1/usage", {"from": data["from"], "to": data["to"], "group_by": data["group_by"], "api_key": key.pk}
    ).json()
    assert data == expected and data["api_key"] == key.pk
    # The world's actions were charged to this key; the page's key table names it.
    assert any(k["api_key_id"] == key.pk and k["credits"] > 0 for k in expected["credits_by_api_key"])
    assert 'id="table-keys"' in html and key.prefix in html
    csv_link = re.search(r'id="usage-csv" href="([^"]+)"', html)[1].replace("&amp;", "&")
    assert f"key={key.pk}" in csv_link
    rows = list(csv.reader(io.StringIO(pages.get(csv_link).content.decode())))
    assert rows[1][2] == str(expected["credits_spent"])
    # Another account's key, a key that does not exist and a malformed one: 404, like every id.
    other = ApiKey.objects.filter(account=stranger.account).first()
    assert other is not None
    for bad in (str(other.pk), "999999", "x1"):
        assert pages.get(f"/console/usage/?key={bad}").status_code == 404
        assert pages.get(f"/console/usage.csv?key={bad}").status_code == 404


def test_session_page_links_a_ready_recordings_replay(tenant: Tenant, world: World) -> None:
    from sessions.models import RecordingStatus, SessionRecording
    from sessions.recordings import recording_replay_resolve

    page = f"/console/sessions/{world.session_id}/"
    assert 'id="recording"' not in tenant.pages().get(page).content.decode()  # not recorded
    recording = SessionRecording.objects.create(
        session_id=world.session_id,
        account=tenant.account,
        status=RecordingStatus.PROCESSING,
        created_at=timezone.now(),
    )
    html = tenant.pages().get(page).content.decode()
    assert 'id="recording-status">processing' in html and 'id="replay"' not in html
    recording.status = RecordingStatus.READY
    recording.save(update_fields=["status"])
    html = tenant.pages().get(page).content.decode()
    link = re.search(r'id="replay" href="/v1/replay/([^"/]+)/?"', html)
    assert link is not None, html
    assert recording_replay_resolve(link[1]).pk == world.session_id
