"""Webhooks of a job: signed deliveries (Standard Webhooks) to a receiver the tests run, retried,
failures visible on the job, and never a way into the service's own network."""

from __future__ import annotations

import json

from standardwebhooks import Webhook

from tests.jobs.conftest import submit, wait_job
from tests.support.processes import wait_until


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
    # The job's secret is the key: the standardwebhooks library verifies every post.
    verifier = Webhook(b"s3cret")
    delivered = [verifier.verify(post["body"], post["headers"]) for post in posts]
    ids = [post["headers"]["webhook-id"] for post in posts]
    assert len(set(ids)) == 3  # the retried post carried the same event id as its first attempt
    assert sorted({event["type"] for event in delivered}) == ["job.completed", "job.page", "job.page_failed"]
    assert {event["data"]["job_id"] for event in delivered} == {job["id"]}
    completed = next(event for event in delivered if event["type"] == "job.completed")
    assert completed["data"]["status"] == "completed"
    failed = next(event for event in delivered if event["type"] == "job.page_failed")
    assert failed["data"]["error"]["code"] == "http_404"
    assert all(json.loads(post["body"])["id"] == post["headers"]["webhook-id"] for post in posts)
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
    # No secret given: not signed, but identified.
    for post in site.hooks_for("fail-99-down"):
        assert "webhook-signature" not in {name.lower() for name in post["headers"]}
        assert post["headers"]["webhook-id"].startswith("evt_")


def test_a_redirect_to_an_internal_host_is_never_followed_and_shows_no_socket_error(client, site):
    """Issue 19 item 1: a receiver that answers 303 to a forbidden loopback host (127.0.0.2 stands
    for the worker's network) must not make the service reach it, and the job tells the tenant
    only the receiver's status, no socket error text."""
    from tests.webhooks.receiver import running_receiver

    with running_receiver("127.0.0.1") as receiver, running_receiver("127.0.0.2") as internal:
        target = f"{internal.url}/shutdown"
        # A second hook whose redirect goes to a closed port of the forbidden host: the old code
        # reported `[Errno 111] Connection refused` back to the tenant (a port scanner).
        hook = f"{receiver.url}/redirect-a?to={target}"
        job = submit(
            client,
            {"urls": [f"{site.url}/p/1"], "webhook": {"url": hook, "events": ["completed"]}},
        )
        wait_job(client, job["id"])

        def settled():
            webhook = client.get(f"/v1/jobs/{job['id']}").json()["webhook"]
            return webhook if webhook["failures"] >= 1 or internal.all() else None

        webhook = wait_until(settled, timeout=30, message="the redirected delivery to settle")
        assert len(receiver.posts("redirect-a")) >= 1
        assert internal.all() == []  # never reached, not even once
        assert webhook["last_error"] == "HTTP 303"
        assert "Errno" not in str(webhook) and "refused" not in str(webhook).lower()


def test_a_closed_port_is_reported_coarsely(client, site):
    """The delivery error says `failed`, never the socket's text (`[Errno 111] Connection refused`
    turned job webhooks into a port scanner of the worker's network)."""
    from tests.conftest import free_port

    hook = f"http://127.0.0.1:{free_port()}/nothing-here"
    job = submit(client, {"urls": [f"{site.url}/p/1"], "webhook": {"url": hook, "events": ["completed"]}})
    wait_job(client, job["id"])

    def settled():
        webhook = client.get(f"/v1/jobs/{job['id']}").json()["webhook"]
        return webhook if webhook["failures"] >= 1 else None

    webhook = wait_until(settled, timeout=60, message="the delivery to a closed port to fail")
    assert webhook["last_error"] == "failed"
