"""Plan limits: URLs per job, running jobs, and job browsers counted with sessions."""

from __future__ import annotations

import time

from jobs.models import JobBrowser
from tests.jobs.conftest import submit, wait_job
from tests.support.processes import wait_until


def test_a_job_above_the_plans_url_limit_is_refused(free_client, site):
    urls = [f"{site.url}/p/{n}" for n in range(101)]
    refused = free_client.post("/v1/jobs", {"urls": urls})
    assert refused.status_code == 400 and refused.json()["code"] == "job_too_large"
    assert refused.json()["limit"] == 100
    assert free_client.get("/v1/jobs").json()["results"] == []


def test_a_second_job_waits_queued_while_the_plan_runs_one(free_client, site):
    first = submit(
        free_client, {"urls": [f"{site.url}/p/{n}?ms=600" for n in range(1, 5)], "max_concurrency": 1}
    )
    second = submit(free_client, {"urls": [f"{site.url}/p/{n}" for n in range(5, 7)]})
    assert free_client.get(f"/v1/jobs/{second['id']}").json()["status"] == "queued"
    first_done = wait_job(free_client, first["id"])
    second_done = wait_job(free_client, second["id"])
    assert second_done["status"] == "completed"
    assert second_done["started_at"] >= first_done["finished_at"]


def test_job_browsers_count_against_the_session_limit(free_client, site):
    job = submit(
        free_client, {"urls": [f"{site.url}/p/{n}?ms=800" for n in range(1, 9)], "max_concurrency": 5}
    )
    assert job["max_concurrency"] == 2  # the free plan's concurrent browsers
    wait_until(
        lambda: JobBrowser.objects.filter(job_id=job["id"], is_live=True).count() == 2,
        timeout=30,
        message="the job to use both browser slots",
    )
    refused = free_client.post("/v1/computers", {})
    assert refused.status_code == 429 and refused.json()["code"] == "concurrency_limit"
    assert free_client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    wait_job(free_client, job["id"])


def test_a_job_waits_queued_while_sessions_hold_every_slot(free_client, site):
    sessions = [free_client.post("/v1/computers", {}).json()["id"] for _ in range(2)]
    job = submit(free_client, {"urls": [f"{site.url}/p/1"]})
    # Proves a negative: nothing starts it. Beat's job tick runs every second here
    # (JOB_TICK_INTERVAL_SECONDS=1, tests/support/test_env.py) and starts a queued job on the
    # tick that finds a free slot, so 2.5 s holds two ticks that would have started it.
    time.sleep(2.5)
    assert free_client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    assert free_client.delete(f"/v1/computers/{sessions[0]}").status_code in (200, 204)
    done = wait_job(free_client, job["id"])
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 1


def test_a_pro_job_may_hold_more_urls_than_a_free_one(client, site):
    urls = [f"{site.url}/p/{n}?ms=300" for n in range(150)]
    job = submit(client, {"urls": urls, "max_concurrency": 1})
    assert job["total"] == 150
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    done = wait_job(client, job["id"])
    assert done["status"] == "cancelled"
