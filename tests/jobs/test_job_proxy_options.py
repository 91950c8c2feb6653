"""Batch jobs with upstream proxies, the web's side (database only): what `POST /v1/jobs` may
name, what is refused before anything is written, what is sealed and never shown (responses, the
admin), and how a job's pool bytes are charged (docs/proxies.md)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from billing.models import Balance, LedgerEntry, Price
from jobs.models import Job, JobBrowser
from jobs.services import job_proxy_bill
from jobs.services.admission import _admit_account
from sessions import proxies
from sessions.proxy_billing import MB
from tests.jobs.conftest import api_for

SECRET = "job-pw-s3cret"
URLS = ["http://127.0.0.1:9/a", f"http://proxied.test:{os.environ['BF_TEST_SITE_PORT']}/b"]


def _written(account: Any) -> tuple[int, int, int]:
    return (
        Job.objects.filter(account=account).count(),
        LedgerEntry.objects.filter(account=account).count(),
        Balance.objects.get(account=account).credits,
    )


def _refused(body: dict[str, Any], code: str) -> None:
    api, account = api_for("pro")
    before = _written(account)
    response = api.post("/v1/jobs", {"urls": URLS, **body}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code, response.content
    assert SECRET not in response.content.decode()
    assert _written(account) == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"proxies": [{"server": f"http://u:{SECRET}@127.0.0.2:3128"}]}, "blocked_address"),
        ({"proxies": [{"server": "socks5://10.0.0.5:1080", "password": SECRET}]}, "blocked_address"),
        ({"proxies": [{"server": f"ftp://u:{SECRET}@127.0.0.1:21"}]}, "invalid_proxy"),
        ({"proxies": [{"server": "http://127.0.0.1:3128", "domain_pattern": "a b"}]}, "invalid_proxy"),
        ({"proxies": []}, "invalid_proxy"),
        ({"proxies": [{"server": "direct"}], "use_advanced_proxy": True}, "invalid_proxy"),
        ({"proxy_country": "de"}, "invalid_proxy"),
        ({"use_advanced_proxy": True, "proxy_country": "fr"}, "proxy_country_unavailable"),
    ],
)
def test_a_job_with_bad_proxy_settings_is_400_and_writes_nothing(seeded, body, code):
    _refused(body, code)


@pytest.mark.parametrize(
    ("change", "body"),
    [
        ({"EGRESS_ROUTES_DIR": ""}, {"proxies": [{"server": "http://127.0.0.1:3128", "password": SECRET}]}),
        ({"BROWSER_BACKEND": "grid"}, {"use_advanced_proxy": True}),
        ({"ADVANCED_PROXY_URLS": []}, {"use_advanced_proxy": True}),
    ],
)
def test_a_job_proxy_the_server_cannot_honour_is_refused_never_run_direct(seeded, settings, change, body):
    for name, value in change.items():
        setattr(settings, name, value)
    _refused(body, "proxy_unavailable")


def test_a_jobs_rules_are_sealed_and_shown_without_credentials_anywhere(seeded):
    api, _ = api_for("pro")
    body = {
        "urls": URLS,
        "proxies": [
            {
                "server": "http://127.0.0.1:3128",
                "username": "alice",
                "password": SECRET,
                "domain_pattern": "proxied.test",
            },
            {"server": "direct"},
        ],
    }
    created = api.post("/v1/jobs", body, format="json")
    assert created.status_code == 201, created.content
    shown = created.json()
    assert shown["proxies"] == [
        {"server": "http://127.0.0.1:3128", "domain_pattern": "proxied.test"},
        {"server": "direct", "domain_pattern": None},
    ]
    assert shown["use_advanced_proxy"] is False and shown["proxy_bytes"] == 0 and shown["proxy_mb"] == 0
    job = Job.objects.get(pk=shown["id"])
    assert SECRET.encode() not in bytes(job.proxy_config) and SECRET not in json.dumps(job.spec)
    config = proxies.proxy_config_open(session_id=job.pk, sealed=job.proxy_config)
    document = proxies.route_document(session_id=job.pk, config=config, meter="job-b1", report="job-b1")
    first = document["rules"][0]
    assert first["password"] == SECRET and first["domain_pattern"] == "proxied.test"
    assert document["meter"] == "job-b1" and document["report"] == "job-b1"
    # Read back through the API and in the operator's admin: never the credentials.
    texts = [api.get(f"/v1/jobs/{job.pk}").content.decode(), api.get("/v1/jobs").content.decode()]
    operator = Client()
    operator.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    from django.contrib.admin.utils import quote

    page = operator.get(f"/admin/jobs/job/{quote(job.pk)}/change/")
    assert page.status_code == 200
    texts.append(page.content.decode())
    assert all(SECRET not in text for text in texts)
    assert "proxy_config" not in texts[-1]


def test_an_advanced_proxy_job_keeps_one_pool_member_for_all_its_browsers(seeded):
    api, _ = api_for("pro")
    created = api.post(
        "/v1/jobs", {"urls": URLS, "use_advanced_proxy": True, "proxy_country": "de"}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["use_advanced_proxy"] is True and created.json()["proxy_country"] == "de"
    job = Job.objects.get(pk=created.json()["id"])
    config = proxies.proxy_config_open(session_id=job.pk, sealed=job.proxy_config)
    assert config == {"pool": "pool-de-2", "country": "de"}
    document = proxies.route_document(session_id=job.pk, config=config, meter="job-b2")
    assert document["rules"][0]["metered"] is True and document["meter"] == "job-b2"


def test_a_jobs_pool_bytes_are_summed_over_its_browsers_and_charged_per_started_mb_once(seeded):
    api, account = api_for("pro")
    created = api.post(
        "/v1/jobs", {"urls": URLS, "use_advanced_proxy": True, "max_concurrency": 2}, format="json"
    )
    assert created.status_code == 201, created.content
    job = Job.objects.get(pk=created.json()["id"])
    first, second = _admit_account(account.pk)
    price = Price.objects.get(item="proxy_mb").credits
    charges = LedgerEntry.objects.filter(account=account, kind=LedgerEntry.Kind.PROXY)
    assert job_proxy_bill(browser_id=first, total_bytes=MB // 2)
    assert job_proxy_bill(browser_id=first, total_bytes=MB // 2)  # the same total again
    assert job_proxy_bill(browser_id=first, total_bytes=MB // 4)  # an older, smaller total
    assert [-c.amount for c in charges] == [price]
    assert job_proxy_bill(browser_id=second, total_bytes=MB // 2 + 1)  # the job: 1 MB + 1 byte
    assert sorted(-c.amount for c in charges.all()) == [price, price]
    job.refresh_from_db()
    assert (job.proxy_bytes, job.proxy_billed_mb) == (MB + 1, 2)
    assert sorted(JobBrowser.objects.filter(job=job).values_list("proxy_bytes", flat=True)) == [
        MB // 2,
        MB // 2 + 1,
    ]
    assert api.get(f"/v1/jobs/{job.pk}").json()["proxy_mb"] == 2
    usage = api.get("/v1/usage").json()
    assert usage["proxy_mb"] == 2 and usage["credits_by_kind"]["proxy"] == 2 * price
    ledger = LedgerEntry.objects.filter(account=account).values_list("amount", flat=True)
    assert Balance.objects.get(account=account).credits == sum(ledger)


def test_a_running_job_whose_balance_cannot_cover_its_pool_bytes_ends_credits_exhausted(seeded):
    from jobs.models import JobStatus
    from project.redis import get_redis
    from workers.egress.metering import meter_key
    from workers.services import job_proxy_bytes_bill

    api, account = api_for("pro", credits=60)  # 2 pages x 3 tries x 10: all of it held
    created = api.post("/v1/jobs", {"urls": URLS, "use_advanced_proxy": True}, format="json")
    assert created.status_code == 201, created.content
    job = Job.objects.get(pk=created.json()["id"])
    (browser_id, *_) = _admit_account(account.pk)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    redis = get_redis()
    try:
        redis.hset(meter_key(browser_id), mapping={"bytes:filter-1": 3 * MB, "open:filter-1": 0})
        assert job_proxy_bytes_bill() == 1
    finally:
        redis.delete(meter_key(browser_id))
    job.refresh_from_db()
    assert (job.status, job.ended_reason) == ("failed", "credits_exhausted")
    assert job.proxy_billed_mb == 0 and job.credits_held == 0
    assert not LedgerEntry.objects.filter(account=account, kind=LedgerEntry.Kind.PROXY).exists()
    ledger = LedgerEntry.objects.filter(account=account).values_list("amount", flat=True)
    assert Balance.objects.get(account=account).credits == sum(ledger) == 60
