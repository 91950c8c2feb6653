"""Every try of a page costs browser time, whatever its outcome, unless the failure is ours
(issue 19 item 6): a page that never loads is no longer free to retry. Database only: tries are
claimed and recorded through the services a worker calls."""

from __future__ import annotations

from typing import Any

from billing.models import LedgerEntry
from jobs.models import Job, JobItem
from jobs.services import JobSpec, PageOutcome, item_claim, item_record, job_submit
from jobs.services.admission import _admit_account
from tests.jobs.conftest import api_for


def _try(job: Job, browser_id: str, outcome: PageOutcome) -> str | None:
    # The whole test is one transaction, where SQL's now() stays at its start: a retry's
    # not_before (backoff 0) would still lie ahead of it.
    JobItem.objects.filter(job=job).update(not_before=None)
    claim = item_claim(job_id=job.pk, browser_id=browser_id)
    assert claim.state == "claimed" and claim.item is not None, claim
    return item_record(item_id=claim.item.pk, job_id=job.pk, browser_id=browser_id, outcome=outcome)


def _job(account: Any, **spec: Any) -> tuple[Job, str]:
    job, _ = job_submit(
        account=account, spec=JobSpec(items=[{"url": "http://127.0.0.1:9/"}], scrape={}, **spec)
    )
    (browser_id,) = _admit_account(account.pk)
    return job, browser_id


TIMEOUT = PageOutcome(ok=False, transient=True, error_code="timeout", error_message="slow")


def test_each_try_that_is_not_our_failure_is_charged_once(seeded, settings):
    settings.JOB_RETRY_BACKOFF_SECONDS = 0
    _, account = api_for("pro")
    job, browser_id = _job(account, max_retries=2)
    assert _try(job, browser_id, TIMEOUT) == "queued"
    crashed = PageOutcome(ok=False, transient=True, error_code="browser_crashed", error_message="ours")
    assert _try(job, browser_id, crashed) == "queued"  # ours: free
    assert _try(job, browser_id, PageOutcome(ok=True, http_status=200, data={"a": 1})) == "succeeded"
    item = JobItem.objects.get(job=job)
    assert item.attempts == 3 and item.credits == 2 * job.page_price
    charges = LedgerEntry.objects.filter(account_id=account.pk, kind=LedgerEntry.Kind.JOB_PAGE)
    assert sorted(charges.values_list("amount", flat=True)) == [-job.page_price] * 2
    assert len(set(charges.values_list("idempotency_key", flat=True))) == 2
    job.refresh_from_db()
    assert job.credits_used == 2 * job.page_price


def test_a_page_that_only_times_out_costs_each_try(seeded, settings):
    settings.JOB_RETRY_BACKOFF_SECONDS = 0
    _, account = api_for("pro")
    job, browser_id = _job(account, max_retries=1)
    assert _try(job, browser_id, TIMEOUT) == "queued"
    assert _try(job, browser_id, TIMEOUT) == "failed"
    assert JobItem.objects.get(job=job).credits == 2 * job.page_price


def test_retries_times_the_page_timeout_is_capped(seeded):
    api, _ = api_for("pro")
    body = {"urls": ["http://127.0.0.1:9/"], "page_timeout_seconds": 120, "max_retries": 10}
    response = api.post("/v1/jobs", body, format="json")
    assert response.status_code == 400 and "max_retries" in response.content.decode()
    # A wait longer than the page may take only restarts browsers.
    body = {
        "urls": ["http://127.0.0.1:9/"],
        "page_timeout_seconds": 1,
        "wait_for": {"selector": "p", "timeout_ms": 60_000},
    }
    response = api.post("/v1/jobs", body, format="json")
    assert response.status_code == 400 and "wait_for" in response.content.decode()


def test_an_upstream_proxys_failure_is_retried_and_never_charged(seeded, settings):
    settings.JOB_RETRY_BACKOFF_SECONDS = 0
    _, account = api_for("pro")
    job, browser_id = _job(account, max_retries=1)
    proxy_failed = PageOutcome(ok=False, transient=True, error_code="proxy_error", error_message="proxy")
    assert _try(job, browser_id, proxy_failed) == "queued"  # transient: tried again
    assert _try(job, browser_id, proxy_failed) == "failed"
    item = JobItem.objects.get(job=job)
    assert item.attempts == 2 and item.credits == 0 and item.error_code == "proxy_error"
    assert not LedgerEntry.objects.filter(account_id=account.pk, kind=LedgerEntry.Kind.JOB_PAGE).exists()
    job.refresh_from_db()
    assert job.credits_used == 0
