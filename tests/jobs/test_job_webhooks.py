"""Webhooks: signed deliveries to a receiver the tests run, retried, failures visible on the job."""

from __future__ import annotations

import hashlib
import hmac
import json

from tests.jobs.conftest import submit, wait_job
from tests.support.processes import wait_until


def _signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_events_are_delivered_signed_and_retried_after_a_failure(client, site):
    hook = f"{site.url}/hook/fail-1-signed"
    job = submit(
        client,
        {
            "urls": [f"{site.url}/p/1", f"{site.url}/status/404"],
            "max_retries": 0,
            "webhook": {"url": hook, "secret": "s3cret"},
        },
    )
    wait_job(client, job["id"])
    # page, page_failed and completed; the first attempt of one of them got a 500 and was retried.
    wait_until(lambda: len(site.hooks_for("fail-1-signed")) >= 4, timeout=30, message="4 webhook posts")
    posts = site.hooks_for("fail-1-signed")
    for post in posts:
        assert post["headers"]["X-Browserfleet-Signature"] == _signature("s3cret", post["body"])
    delivered = [json.loads(post["body"]) for post in posts[1:]]
    assert sorted(event["event"] for event in delivered) == ["completed", "page", "page_failed"]
    assert {event["job_id"] for event in delivered} == {job["id"]}
    completed = next(event for event in delivered if event["event"] == "completed")
    assert completed["data"]["status"] == "completed"
    failed = next(event for event in delivered if event["event"] == "page_failed")
    assert failed["data"]["error"]["code"] == "http_404"
    webhook = client.get(f"/v1/jobs/{job['id']}").json()["webhook"]
    assert webhook["failures"] == 0 and webhook["url"] == hook


def test_a_receiver_that_keeps_failing_shows_on_the_job(client, site):
    hook = f"{site.url}/hook/fail-99-down"
    job = submit(client, {"urls": [f"{site.url}/p/1"], "webhook": {"url": hook, "events": ["completed"]}})
    wait_job(client, job["id"])

    def failure_recorded():
        webhook = client.get(f"/v1/jobs/{job['id']}").json()["webhook"]
        return webhook if webhook["failures"] == 1 else None

    webhook = wait_until(failure_recorded, timeout=30, message="the delivery to fail for good")
    assert webhook["last_error"] == "HTTP 500"
    assert len(site.hooks_for("fail-99-down")) == 3  # WEBHOOK_MAX_ATTEMPTS in tests
    assert all("X-Browserfleet-Signature" not in post["headers"] for post in site.hooks_for("fail-99-down"))
