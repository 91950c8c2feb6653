"""What a tenant's job gives back, and what it may put in: exports safe to open in a spreadsheet,
over-long URLs and keys refused clearly (issue 19, items 9 and 13). Database only."""

from __future__ import annotations

import csv
import io
from typing import Any

from jobs.models import ItemStatus, Job, JobItem
from jobs.services import JobSpec, job_submit
from tests.jobs.conftest import api_for

SCHEMA = {"fields": {"name": "h1", "price": ".price"}}


def _export(api: Any, job_id: str, fmt: str) -> bytes:
    response = api.get(f"/v1/jobs/{job_id}/results", {"format": fmt})
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def _job_with_results(account: Any, rows: list[dict[str, Any]]) -> Job:
    job, _ = job_submit(
        account=account,
        spec=JobSpec(
            items=[{"url": f"http://127.0.0.1:9/p/{n}"} for n in range(len(rows))], scrape={"schema": SCHEMA}
        ),
    )
    for item, row in zip(JobItem.objects.filter(job=job).order_by("seq"), rows, strict=True):
        item.status = ItemStatus.SUCCEEDED if "data" in row else ItemStatus.FAILED
        item.data = row.get("data")
        item.error_code = row.get("error_code", "")
        item.error_message = row.get("error_message", "")
        item.save()
    return job


FORMULAS = ['=HYPERLINK("http://127.0.0.2/","x")', "@SUM(1+1)", "+1+2", "-2+3", "\tTAB", "\rCR"]


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(seeded):
    api, account = api_for("pro")
    job = _job_with_results(
        account,
        [{"data": {"name": formula, "price": "$1.00"}} for formula in FORMULAS]
        + [{"error_code": "http_error", "error_message": "=cmd|' /C calc'!A0"}],
    )
    rows = list(csv.DictReader(io.StringIO(_export(api, job.pk, "csv").decode())))
    names = [row["name"] for row in rows[: len(FORMULAS)]]
    assert names == ["'" + formula for formula in FORMULAS]
    assert rows[0]["price"] == "$1.00"  # ordinary text is left alone
    assert rows[-1]["error_message"].startswith("'=")
    # JSON lines carry data, not spreadsheet cells: unchanged.
    assert b"=HYPERLINK" in _export(api, job.pk, "jsonl")
    assert b"'=HYPERLINK" not in _export(api, job.pk, "jsonl")


def test_a_url_longer_than_4096_characters_is_a_clear_400(seeded):
    api, _ = api_for("pro")
    long_url = "http://127.0.0.1:9/" + "a" * 4100
    response = api.post("/v1/jobs", {"urls": [long_url]}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "4096" in response.json()["detail"]
    assert not Job.objects.exists()


def test_a_url_whose_key_would_pass_2048_characters_is_accepted_with_a_short_key(seeded):
    api, _ = api_for("pro")
    url = "http://127.0.0.1:9/" + "b" * 3000
    response = api.post("/v1/jobs", {"urls": [url, url]}, format="json")
    assert response.status_code == 201, response.content[:300]
    assert response.json()["total"] == 1  # still de-duplicated
    item = JobItem.objects.get()
    assert len(item.key) <= 2048 and item.url == url


def test_a_key_longer_than_2048_characters_is_a_clear_400(seeded):
    api, _ = api_for("pro")
    response = api.post(
        "/v1/jobs", {"items": [{"url": "http://127.0.0.1:9/", "key": "k" * 2049}]}, format="json"
    )
    assert response.status_code == 400 and "2048" in response.content.decode()
    # Characters beyond the BMP are 4 bytes each: 2048 characters, 8 KiB.
    response = api.post(
        "/v1/jobs", {"items": [{"url": "http://127.0.0.1:9/", "key": "\U0001f600" * 2048}]}, format="json"
    )
    assert response.status_code in (201, 400), response.content[:300]
