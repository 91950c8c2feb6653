"""Tenant JSON a job keeps is bounded, and lists never carry it (issue 19, item 3). Database only."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import selectors
from jobs.models import ItemStatus, Job, JobItem
from jobs.services import JobSpec, PageOutcome, item_claim, item_record, job_submit
from jobs.services.admission import _admit_account
from tests.jobs.conftest import api_for


def test_invalid_and_duplicate_urls_are_stored_capped_and_never_listed(seeded):
    api, _ = api_for("pro")
    huge = "http://127.0.0.2/" + "x" * 4000  # refused (a private address), and long
    urls = [f"{huge}{n}" for n in range(150)] + ["http://127.0.0.1:9/a"] * 3 + [huge + "?" + "d" * 3000] * 2
    response = api.post("/v1/jobs", {"urls": urls, "ignore_invalid_urls": True}, format="json")
    assert response.status_code == 201, response.content[:300]
    created = response.json()
    job = Job.objects.get(pk=created["id"])
    assert len(job.invalid_urls) <= 100
    assert all(len(entry["url"]) <= 200 and len(entry["reason"]) <= 300 for entry in job.invalid_urls)
    assert job.invalid_urls[0]["index"] == 0
    assert 0 < len(job.duplicate_urls) <= 100 and all(len(url) <= 200 for url in job.duplicate_urls)
    # The job's own page shows them; the list does not carry them.
    detail = api.get(f"/v1/jobs/{job.pk}").json()
    assert detail["invalid_urls"] == job.invalid_urls
    listed = api.get("/v1/jobs").json()["results"]
    assert listed[0]["id"] == job.pk
    assert listed[0]["invalid_urls"] is None and listed[0]["duplicate_urls"] is None


def test_item_metadata_and_keys_are_capped_in_bytes(seeded):
    api, _ = api_for("pro")
    big = {"url": "http://127.0.0.1:9/", "metadata": {"note": "m" * 5000}}
    response = api.post("/v1/jobs", {"items": [big]}, format="json")
    assert response.status_code == 400 and "metadata" in response.content.decode()
    wide_key = {"url": "http://127.0.0.1:9/", "key": "\U0001f600" * 1000}  # 4,000 bytes
    response = api.post("/v1/jobs", {"items": [wide_key]}, format="json")
    assert response.status_code == 400 and "key" in response.content.decode()
    assert not Job.objects.exists()


def _claimed(account: Any) -> tuple[Job, str, int]:
    job, _ = job_submit(account=account, spec=JobSpec(items=[{"url": "http://127.0.0.1:9/"}], scrape={}))
    (browser_id,) = _admit_account(account.pk)
    claim = item_claim(job_id=job.pk, browser_id=browser_id)
    assert claim.state == "claimed" and claim.item is not None
    return job, browser_id, claim.item.pk


def test_an_items_data_over_the_cap_is_not_stored(seeded, settings):
    settings.JOB_ITEM_DATA_MAX_BYTES = 64 * 1024
    _, account = api_for("pro")
    job, browser_id, item_id = _claimed(account)
    outcome = PageOutcome(ok=True, chargeable=True, http_status=200, data={"text": "z" * 100_000})
    assert item_record(item_id=item_id, job_id=job.pk, browser_id=browser_id, outcome=outcome) == "failed"
    item = JobItem.objects.get(pk=item_id)
    assert item.data is None and item.error_code == "result_too_large"
    assert item.credits == job.page_price  # the page was loaded and processed: it is charged


def test_queued_jobs_are_capped_per_plan(seeded):
    from accounts.models import Plan

    # None may start (max_running_jobs 0), whether or not a worker runs: they stay queued.
    Plan.objects.filter(name="free").update(max_queued_jobs=2, max_running_jobs=0)
    api, _ = api_for("free")
    for _ in range(2):
        assert api.post("/v1/jobs", {"urls": ["http://127.0.0.1:9/"]}, format="json").status_code == 201
    refused = api.post("/v1/jobs", {"urls": ["http://127.0.0.1:9/"]}, format="json")
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_queued_jobs"
    assert refused.json()["limit"] == 2
    assert Job.objects.count() == 2


def test_exports_read_rows_in_chunks_sized_by_bytes(seeded, settings):
    settings.JOB_EXPORT_CHUNK_BYTES = 16 * 1024
    _, account = api_for("pro")
    urls = [{"url": f"http://127.0.0.1:9/{n}"} for n in range(12)]
    job, _ = job_submit(account=account, spec=JobSpec(items=urls, scrape={}))
    JobItem.objects.filter(job=job).update(status=ItemStatus.SUCCEEDED, data={"text": "y" * 6000})
    with CaptureQueriesContext(connection) as queries:
        rows = list(selectors.job_results_iter(job=job, status=None))
    assert [row.seq for row in rows] == list(range(12))
    full_reads = [q for q in queries.captured_queries if '"jobs_jobitem"."data"' in q["sql"]]
    # 6 KB of data a row, 16 KB a chunk: at most 3 rows a read (500 whatever their size, before).
    assert len(full_reads) >= 4
