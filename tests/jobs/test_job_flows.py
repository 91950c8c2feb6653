"""Batch jobs through the API, on pages the tests serve: results, counts, retries, billing."""

from __future__ import annotations

import csv
import io

import requests

from jobs.models import JobBrowser
from tests.conftest import free_port
from tests.jobs.conftest import SCHEMA, json_lines, ledger, results, submit, wait_job
from tests.support.processes import wait_until

SCRAPE_PRICE = 10  # billing.prices.DEFAULT_PRICES
SCREENSHOT_PRICE = 2


def test_job_scrapes_every_page_and_charges_each_once(client, site):
    urls = [f"{site.url}/p/{n}" for n in range(1, 7)]
    job = submit(client, {"urls": urls, "max_concurrency": 2})
    assert job["status"] in ("queued", "running")
    assert job["total"] == 6
    # Held: every try of every page (max_retries 2 by default), each try being charged.
    assert job["credits_reserved"] == 6 * 3 * SCRAPE_PRICE
    balance = client.get("/v1/account").json()["balance"]
    assert balance == 100_000 - 6 * 3 * SCRAPE_PRICE

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


def test_usage_shows_job_pages(client, site):
    job = submit(client, {"urls": [f"{site.url}/p/{n}" for n in range(1, 3)]})
    wait_job(client, job["id"])
    usage = client.get("/v1/usage").json()
    assert usage["job_pages"] == 2
    assert usage["credits_by_kind"]["job_page"] == 2 * SCRAPE_PRICE
    assert "job_hold" not in usage["credits_by_kind"]  # a hold is not spending


def test_failures_are_retried_when_transient_and_each_try_is_charged_once(client, site):
    closed = free_port()
    urls = [
        f"{site.url}/p/1",
        f"{site.url}/status/404",  # the target's failure, final at once: charged
        f"{site.url}/status/500",  # transient, still failing after the retry: both tries charged
        f"{site.url}/flaky/f1",  # 500, then a page: both tries charged
        f"{site.url}/limited/l1",  # 429 with Retry-After: 1, then a page
        f"http://127.0.0.1:{closed}/gone",  # never loads: the browser's time is still spent
    ]
    job = submit(client, {"urls": urls, "max_retries": 1, "max_concurrency": 3})
    done = wait_job(client, job["id"])
    assert done["status"] == "completed"
    assert done["counts"] == {
        "queued": 0,
        "running": 0,
        "succeeded": 3,
        "failed": 3,
        "skipped": 0,
        "cancelled": 0,
    }
    rows = {row["url"]: row for row in results(client, job["id"])}
    assert rows[urls[1]]["error"]["code"] == "http_404" and rows[urls[1]]["attempts"] == 1
    assert rows[urls[1]]["http_status"] == 404 and rows[urls[1]]["credits"] == SCRAPE_PRICE
    assert rows[urls[2]]["error"]["code"] == "http_500" and rows[urls[2]]["attempts"] == 2
    assert rows[urls[2]]["credits"] == 2 * SCRAPE_PRICE
    assert rows[urls[3]]["credits"] == 2 * SCRAPE_PRICE
    assert rows[urls[3]]["status"] == "succeeded" and rows[urls[3]]["attempts"] == 2
    assert rows[urls[3]]["data"]["name"] == "Product f1"
    assert rows[urls[4]]["status"] == "succeeded" and rows[urls[4]]["attempts"] == 2
    gets = site.hit_times["/limited/l1"]
    assert len(gets) == 2 and gets[1] - gets[0] >= 0.9, "Retry-After: 1 was not honoured"
    assert rows[urls[5]]["status"] == "failed" and rows[urls[5]]["error"]["code"] == "connection_error"
    assert rows[urls[5]]["credits"] == 2 * SCRAPE_PRICE and rows[urls[5]]["attempts"] == 2

    # 1 + 1 + 2 + 2 + 2 + 2 tries (issue 19 item 6: failed tries are not free).
    assert done["credits_used"] == 10 * SCRAPE_PRICE
    assert client.get("/v1/account").json()["balance"] == 100_000 - 10 * SCRAPE_PRICE
    page_charges = [amount for kind, amount in ledger(client.account.pk) if kind == "job_page"]
    assert page_charges == [-SCRAPE_PRICE] * 10

    failed = results(client, job["id"], status="failed")
    assert {row["url"] for row in failed} == {urls[1], urls[2], urls[5]}


def test_wait_for_a_selector_that_never_appears_fails_the_page_and_is_charged(client, site):
    job = submit(
        client,
        {
            "urls": [f"{site.url}/p/1", f"{site.url}/noprice/2"],
            "wait_for": {"selector": ".price", "timeout_ms": 500},
        },
    )
    done = wait_job(client, job["id"])
    rows = results(client, job["id"])
    assert [row["status"] for row in rows] == ["succeeded", "failed"]
    assert rows[1]["error"]["code"] == "selector_timeout" and rows[1]["attempts"] == 1
    assert done["credits_used"] == 2 * SCRAPE_PRICE


def test_a_page_that_never_finishes_loading_times_out_and_costs_its_try(client, site):
    job = submit(
        client,
        {"urls": [f"{site.url}/hang", f"{site.url}/p/1"], "page_timeout_seconds": 2, "max_retries": 0},
    )
    done = wait_job(client, job["id"])
    rows = results(client, job["id"])
    assert rows[0]["status"] == "failed" and rows[0]["error"]["code"] == "timeout"
    assert rows[0]["credits"] == SCRAPE_PRICE  # the browser's time was spent all the same
    assert rows[1]["status"] == "succeeded"
    assert done["credits_used"] == 2 * SCRAPE_PRICE


def test_duplicates_and_invalid_urls_are_reported_and_skipped(client, site):
    body = {
        "urls": [
            f"{site.url}/p/1",
            f"{site.url}/p/1#reviews",  # the same page
            f"{site.url.upper().replace('HTTP', 'http')}/p/2",
            f"{site.url}/p/2",  # same, host case aside
            "ftp://127.0.0.1/file",
            "not a url",
        ],
        "ignore_invalid_urls": True,
    }
    job = submit(client, body)
    assert job["total"] == 2
    assert job["duplicate_urls"] == [f"{site.url}/p/1#reviews", f"{site.url}/p/2"]
    assert [bad["url"] for bad in job["invalid_urls"]] == ["ftp://127.0.0.1/file", "not a url"]
    assert job["credits_reserved"] == 2 * 3 * SCRAPE_PRICE  # every try
    wait_job(client, job["id"])

    body["ignore_invalid_urls"] = False
    refused = client.post("/v1/jobs", {"scrape": {"schema": SCHEMA}, **body})
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_url" and refused.json()["url"] == "ftp://127.0.0.1/file"
    assert "ftp://127.0.0.1/file" in refused.json()["detail"]
    assert len(client.get("/v1/jobs").json()["results"]) == 1  # nothing created


def test_items_deduplicate_by_key_and_carry_metadata(client, site):
    items = [
        {"url": f"{site.url}/p/1?utm=a", "key": "sku-1", "metadata": {"row": 1}},
        {"url": f"{site.url}/p/1?utm=b", "key": "sku-1", "metadata": {"row": 2}},
        {"url": f"{site.url}/p/3", "metadata": {"row": 3}},
    ]
    job = submit(client, {"items": items})
    assert job["total"] == 2 and job["duplicate_urls"] == [f"{site.url}/p/1?utm=b"]
    wait_job(client, job["id"])
    rows = results(client, job["id"])
    assert [(row["key"], row["metadata"]) for row in rows] == [
        ("sku-1", {"row": 1}),
        (f"{site.url}/p/3", {"row": 3}),
    ]


def test_the_same_idempotency_key_returns_the_same_job(client, site):
    body = {"urls": [f"{site.url}/p/1"], "scrape": {"schema": SCHEMA}}
    first = client.post("/v1/jobs", body, headers={"Idempotency-Key": "batch-42"})
    again = client.post("/v1/jobs", body, headers={"Idempotency-Key": "batch-42"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = client.post(
        "/v1/jobs", {**body, "urls": [f"{site.url}/p/2"]}, headers={"Idempotency-Key": "batch-42"}
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert [kind for kind, _ in ledger(client.account.pk)].count("job_hold") == 1
    wait_job(client, first.json()["id"])


def test_cancel_mid_run_keeps_results_and_charges_nothing_after_it(client, site):
    urls = [f"{site.url}/p/{n}?ms=700" for n in range(1, 13)]
    job = submit(client, {"urls": urls, "max_concurrency": 1})

    def some_done():
        body = client.get(f"/v1/jobs/{job['id']}").json()
        return body if body["counts"]["succeeded"] >= 2 else None

    wait_until(some_done, timeout=60, interval=0.2, message="two pages done")
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] in ("cancelling", "cancelled")
    charged_at_cancel = cancelled.json()["credits_used"]

    done = wait_job(client, job["id"])
    assert done["status"] == "cancelled" and done["ended_reason"] == "cancelled"
    assert done["counts"]["queued"] == 0 and done["counts"]["running"] == 0
    assert done["counts"]["cancelled"] >= 12 - 3
    assert done["credits_used"] == charged_at_cancel == done["counts"]["succeeded"] * SCRAPE_PRICE
    kept = results(client, job["id"], status="succeeded")
    assert len(kept) == done["counts"]["succeeded"] and all(row["data"] for row in kept)
    assert client.get("/v1/account").json()["balance"] == 100_000 - done["credits_used"]
    again = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "job_finished"
    assert again.headers["x-should-retry"] == "false"  # final: the SDK must not send it again


def test_a_job_stops_at_its_budget(client, site):
    job = submit(client, {"urls": [f"{site.url}/p/{n}" for n in range(1, 6)], "max_credits": 25})
    assert job["credits_reserved"] == 25
    assert client.get("/v1/account").json()["balance"] == 100_000 - 25
    done = wait_job(client, job["id"])
    assert done["status"] == "completed" and done["ended_reason"] == "budget_exhausted"
    assert done["counts"]["succeeded"] == 2 and done["counts"]["skipped"] == 3
    assert done["credits_used"] == 20
    assert client.get("/v1/account").json()["balance"] == 100_000 - 20


def test_a_job_the_balance_cannot_cover_is_refused_with_402(make_client, site):
    poor = make_client(plan="pro", credits=30)
    urls = [f"{site.url}/p/{n}" for n in range(1, 6)]
    refused = poor.post("/v1/jobs", {"urls": urls})
    assert refused.status_code == 402 and refused.json()["code"] == "insufficient_credits"
    assert poor.get("/v1/jobs").json()["results"] == []
    assert poor.get("/v1/account").json()["balance"] == 30
    # A budget it can pay for is accepted and ends when the budget does.
    job = submit(poor, {"urls": urls, "max_credits": 30})
    done = wait_job(poor, job["id"])
    assert done["ended_reason"] == "budget_exhausted" and done["credits_used"] == 30
    assert poor.get("/v1/account").json()["balance"] == 0


def test_exports_stream_csv_with_schema_columns_and_jsonl(client, site):
    job = submit(client, {"urls": [f"{site.url}/p/1", f"{site.url}/status/404"], "max_retries": 0})
    wait_job(client, job["id"])
    csv_response = client.get(f"/v1/jobs/{job['id']}/results", params={"format": "csv"})
    assert csv_response.status_code == 200 and csv_response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_response.text)))
    assert rows[0] == [
        "item_id",
        "key",
        "url",
        "final_url",
        "status",
        "http_status",
        "name",
        "price",
        "tags",
        "screenshot_url",
        "error_code",
        "error_message",
        "attempts",
        "credits",
        "finished_at",
    ]
    assert rows[1][4:9] == ["succeeded", "200", "Product 1", "$1.00", '["t1a", "t1b"]']
    assert rows[2][4] == "failed" and rows[2][10] == "http_404"

    jsonl = client.get(f"/v1/jobs/{job['id']}/results", params={"format": "jsonl", "status": "succeeded"})
    assert jsonl.status_code == 200
    lines = json_lines(jsonl.text)
    assert [line["data"]["name"] for line in lines] == ["Product 1"]
    bad = client.get(f"/v1/jobs/{job['id']}/results", params={"format": "xml"})
    assert bad.status_code == 400


def test_screenshots_are_stored_and_priced(client, site):
    job = submit(client, {"urls": [f"{site.url}/p/1"], "screenshot": True})
    assert job["page_price"] == SCRAPE_PRICE + SCREENSHOT_PRICE
    done = wait_job(client, job["id"])
    assert done["credits_used"] == SCRAPE_PRICE + SCREENSHOT_PRICE
    (row,) = results(client, job["id"])
    image = requests.get(row["screenshot_url"], timeout=10)
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_another_accounts_job_is_not_found(make_client, site):
    owner, other = make_client(plan="pro", name="owner"), make_client(plan="pro", name="other")
    job = submit(owner, {"urls": [f"{site.url}/p/1"]})
    for method, path in (
        ("GET", f"/v1/jobs/{job['id']}"),
        ("GET", f"/v1/jobs/{job['id']}/results"),
        ("POST", f"/v1/jobs/{job['id']}/cancel"),
    ):
        response = other.request(method, path)
        assert response.status_code == 404 and response.json()["code"] == "job_not_found"
    assert other.get("/v1/jobs").json()["results"] == []
    wait_job(owner, job["id"])


def test_list_is_newest_first_and_filters_by_status(client, site):
    first = submit(client, {"urls": [f"{site.url}/p/1"]})
    wait_job(client, first["id"])
    second = submit(client, {"urls": [f"{site.url}/p/2"]})
    wait_job(client, second["id"])
    listed = client.get("/v1/jobs").json()
    assert [job["id"] for job in listed["results"]] == [second["id"], first["id"]]
    assert listed["has_more"] is False
    assert client.get("/v1/jobs", params={"status": "running"}).json()["results"] == []
    assert len(client.get("/v1/jobs", params={"status": "completed", "limit": 1}).json()["results"]) == 1
    assert client.get("/v1/jobs", params={"status": "bogus"}).status_code == 400


def test_bad_bodies_are_400_with_the_field_named(client, site):
    cases = [
        ({}, "urls"),
        ({"urls": []}, "urls"),
        ({"urls": [f"{site.url}/p/1"], "scrape": {"schema": {"fields": {}}}}, "schema"),
        ({"urls": [f"{site.url}/p/1"], "max_concurrency": 0}, "max_concurrency"),
        ({"urls": [f"{site.url}/p/1"], "max_credits": 5}, "max_credits"),
        ({"items": [{"href": "x"}]}, "url"),
        ({"urls": [f"{site.url}/p/1"], "webhook": {"url": "ftp://x"}}, "webhook"),
    ]
    for body, word in cases:
        response = client.post("/v1/jobs", body)
        assert response.status_code == 400, (body, response.text)
        assert word in response.json()["detail"], (word, response.json()["detail"])


def test_extraction_errors_fail_the_page_and_are_charged(client, site):
    job = submit(client, {"urls": [f"{site.url}/p/1"], "scrape": {"schema": {"fields": {"name": "h1[["}}}})
    done = wait_job(client, job["id"])
    (row,) = results(client, job["id"])
    assert row["status"] == "failed" and row["error"]["code"] == "scrape_error"
    assert "invalid CSS selector" in row["error"]["message"]
    assert done["credits_used"] == SCRAPE_PRICE


def test_per_domain_concurrency_bounds_requests_to_one_site(client, site):
    site.most_in_flight = 0
    job = submit(
        client,
        {
            "urls": [f"{site.url}/p/{n}?ms=400" for n in range(1, 6)],
            "max_concurrency": 3,
            "per_domain_concurrency": 1,
        },
    )
    done = wait_job(client, job["id"])
    assert done["counts"]["succeeded"] == 5
    assert site.most_in_flight == 1
    # One domain at one page at a time: a second browser would only wait.
    assert JobBrowser.objects.filter(job_id=job["id"]).count() == 1


def test_private_targets_are_refused_at_submit_and_by_the_egress_filter_after_a_redirect(client, site):
    # 127.0.0.2 stands for an internal host (tests/support/test_env.py allows 127.0.0.1 only).
    internal = f"http://127.0.0.2:{site.url.rsplit(':', 1)[1]}/p/1"
    refused = client.post("/v1/jobs", {"urls": [internal]})
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "invalid_url" and "private" in refused.json()["detail"]

    # The submit check sees only the first URL; the redirect is the egress filter's to refuse.
    sneaky = f"{site.url}/redirect/internal?to={internal}"
    job = submit(client, {"urls": [sneaky, f"{site.url}/p/2"], "max_retries": 2})
    done = wait_job(client, job["id"])
    rows = results(client, job["id"])
    assert rows[0]["status"] == "failed" and rows[0]["error"]["code"] == "blocked_address", rows[0]
    assert rows[0]["attempts"] == 1 and rows[0]["credits"] == SCRAPE_PRICE  # final at once, charged
    assert rows[1]["status"] == "succeeded"
    assert done["credits_used"] == 2 * SCRAPE_PRICE


def test_the_browser_loads_the_url_as_the_whatwg_parser_serialises_it(client, site):
    given = site.url.replace("http://", "HTTP://") + "/p/3"
    job = submit(client, {"urls": [given]})
    wait_job(client, job["id"])
    [row] = results(client, job["id"])
    assert row["url"] == f"{site.url}/p/3"  # scheme lower-cased: the URL the browser was given
    assert row["status"] == "succeeded" and row["data"]["name"] == "Product 3"


def test_a_job_submit_may_be_larger_than_other_requests(client, site, settings):
    settings.API_MAX_BODY_BYTES = 4096  # every other request: 413 above this
    padding = "x" * 8000  # an unknown field, ignored: only the body's size matters here
    assert client.post("/v1/computers", {"pad": padding}).status_code == 413
    job = submit(client, {"urls": [f"{site.url}/p/4"], "pad": padding})
    wait_job(client, job["id"])
    settings.JOB_MAX_BODY_BYTES = 4096
    refused = client.post("/v1/jobs", {"urls": [f"{site.url}/p/4"], "pad": padding})
    assert refused.status_code == 413 and refused.json()["limit"] == 4096
