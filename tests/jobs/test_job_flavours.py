"""The flavour of batch jobs' browsers (docs/operations.md "Browser flavours"): Chromium's headless
shell unless the job asks for full Chromium (`browser`, as for sessions; the default is
JOB_BROWSER_FLAVOUR). Which binary runs is read from the job browser's own process while it
waits on a page the test holds open."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobBrowser
from tests.flows.test_browser_flavours import runs
from tests.jobs.conftest import api_for, submit, wait_job
from tests.support.processes import browser_processes, wait_until


@pytest.mark.parametrize(("asked", "expected"), [(None, "headless_shell"), ("chromium", "chromium")])
def test_a_jobs_browsers_are_the_headless_shell_unless_it_asks_for_full_chromium(
    client, site, asked, expected
):
    name = f"flavour-{asked}"
    body = {"urls": [f"{site.url}/held/{name}"], "max_retries": 0, "max_concurrency": 1}
    job = submit(client, {**body, **({"browser": asked} if asked else {})})
    assert job["browser"] == expected
    try:
        wait_until(lambda: site.hits[f"/held/{name}"] >= 1, timeout=60, message="the job browser on the page")
        browser = JobBrowser.objects.get(job_id=job["id"])
        assert runs(browser.profile_dir) == expected
    finally:
        site.gate(name).set()
    done = wait_job(client, job["id"])
    assert done["counts"]["succeeded"] == 1 and done["browser"] == expected
    wait_until(lambda: not browser_processes(browser.profile_dir), timeout=30, message="the job browser gone")


@pytest.mark.parametrize("value", ["firefox", "", "full", 1, None])
def test_any_other_browser_is_400_and_creates_no_job(seeded, value):
    api, account = api_for("pro")
    response = api.post("/v1/jobs", {"urls": ["http://127.0.0.1:9/p/1"], "browser": value}, format="json")
    assert response.status_code == 400, response.content
    assert "browser" in response.json()["errors"], response.json()
    assert not Job.objects.filter(account=account).exists()


def test_on_the_grid_backend_jobs_run_full_chromium_and_the_shell_is_400(seeded, settings):
    settings.BROWSER_BACKEND = "grid"  # the nodes run their own browser: full Chromium
    api, account = api_for("pro")
    body = {"urls": ["http://127.0.0.1:9/p/1"], "browser": "headless_shell"}
    refused = api.post("/v1/jobs", body, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "browser_unavailable", refused.content
    assert not Job.objects.filter(account=account).exists()
    created = api.post("/v1/jobs", {"urls": ["http://127.0.0.1:9/p/1"]}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["browser"] == "chromium"
