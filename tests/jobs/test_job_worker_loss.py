"""A worker process killed mid-job: its page goes back to the queue and is charged once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from django.conf import settings

from jobs.models import JobBrowser, JobItem
from tests.jobs.conftest import results, submit, wait_job
from tests.support.processes import wait_until

SCRAPE_PRICE = 10


def _parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no parent for {pid}")


def _chromedriver_of(browser_id: str) -> int:
    marker = f"{settings.BROWSER_PROFILE_ROOT}/{browser_id}/"
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "chromedriver" in cmdline.split("\0", 1)[0] and marker in cmdline:
            return int(entry.name)
    raise AssertionError(f"no chromedriver for {browser_id}")


def test_a_killed_worker_loses_no_page_and_charges_none_twice(client, site):
    urls = [f"{site.url}/p/{n}?ms=1500" for n in range(1, 7)]
    job = submit(client, {"urls": urls, "max_concurrency": 1})
    running = wait_until(
        lambda: JobItem.objects.filter(job_id=job["id"], status="running").first(),
        timeout=60,
        message="a page in flight",
    )
    browser = JobBrowser.objects.get(pk=running.leased_by)
    wait_until(
        lambda: JobBrowser.objects.get(pk=browser.pk).webdriver_session_id, timeout=30, message="a browser"
    )
    # The Celery worker process that started the browser is the one working on the page.
    worker_child = _parent_of(_chromedriver_of(browser.pk))
    os.kill(worker_child, signal.SIGKILL)

    done = wait_job(client, job["id"], timeout=180)
    assert done["status"] == "completed"
    assert done["counts"]["succeeded"] == 6
    rows = results(client, job["id"])
    assert all(row["credits"] == SCRAPE_PRICE for row in rows)
    assert done["credits_used"] == 6 * SCRAPE_PRICE
    lost = JobItem.objects.get(pk=running.pk)
    assert lost.lost_attempts == 1 and lost.attempts == 2 and lost.status == "succeeded"
