"""Batch jobs through the API, on pages the tests serve: results, counts, retries, billing."""

from __future__ import annotations

from tests.jobs.conftest import ledger, results, submit, wait_job

SCRAPE_PRICE = 10  # billing.prices.DEFAULT_PRICES
SCREENSHOT_PRICE = 2


def test_job_scrapes_every_page_and_charges_each_once(client, site):
    urls = [f"{site.url}/p/{n}" for n in range(1, 7)]
    job = submit(client, {"urls": urls, "max_concurrency": 2})
    assert job["status"] in ("queued", "running")
    assert job["total"] == 6
    assert job["credits_reserved"] == 6 * SCRAPE_PRICE
    balance = client.get("/v1/account").json()["balance"]
    assert balance == 100_000 - 6 * SCRAPE_PRICE  # held

    done = wait_job(client, job["id"])
    assert done["status"] == "completed" and done["ended_reason"] == "all_done"
    assert done["counts"]["succeeded"] == 6
    assert done["credits_used"] == 6 * SCRAPE_PRICE
    assert done["credits_reserved"] == 0
    assert done["eta_seconds"] == 0

    rows = results(client, job["id"], limit=4)
    assert [row["url"] for row in rows] == urls  # submit order, across cursor pages
    first = rows[0]
    assert first["status"] == "succeeded"
    assert first["http_status"] == 200
    assert first["data"] == {"name": "Product 1", "price": "$1.00", "tags": ["t1a", "t1b"]}
    assert first["credits"] == SCRAPE_PRICE and first["attempts"] == 1 and first["error"] is None
    assert client.get("/v1/account").json()["balance"] == 100_000 - 6 * SCRAPE_PRICE
    kinds = [kind for kind, _ in ledger(client.account.pk)]
    assert kinds.count("job_page") == 6 and kinds.count("job_hold") == 1
