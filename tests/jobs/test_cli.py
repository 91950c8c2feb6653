"""bin/bf against the live server, as a user runs it."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.jobs.conftest import SCHEMA, wait_job
from tests.support.processes import REPO, wait_until, with_sigint_default

BF = str(REPO / "bin" / "bf")


def _env(client) -> dict[str, str]:
    return {
        **os.environ,
        "BROWSERFLEET_API_KEY": client.key,
        "BROWSERFLEET_BASE_URL": client.base_url,
        "VENV": str(Path(sys.executable).parent.parent),
        "COLUMNS": "160",
    }


def _bf(client, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BF, *args], env=_env(client), cwd=cwd, capture_output=True, text=True, timeout=180, check=False
    )


def test_submit_watch_results_and_listings(client, site, tmp_path):
    (tmp_path / "urls.txt").write_text(
        f"# products\n{site.url}/p/1\n{site.url}/p/2\n\n{site.url}/status/404\n", encoding="utf-8"
    )
    (tmp_path / "scrape.json").write_text(json.dumps({"schema": SCHEMA}), encoding="utf-8")

    submitted = _bf(
        client,
        "jobs",
        "submit",
        "urls.txt",
        "--scrape",
        "scrape.json",
        "--max-retries",
        "0",
        "--watch",
        cwd=tmp_path,
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.splitlines()[0]
    assert job_id.startswith("job_")
    assert f"job {job_id} completed (all_done): 2 succeeded, 1 failed" in submitted.stderr
    assert "30 credits used" in submitted.stderr

    exported = _bf(client, "jobs", "results", job_id, "--format", "csv", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(row["name"], row["status"]) for row in rows] == [
        ("Product 1", "succeeded"),
        ("Product 2", "succeeded"),
        ("", "failed"),
    ]

    listed = _bf(client, "jobs", "ls", cwd=tmp_path)
    assert listed.returncode == 0 and job_id in listed.stdout and "3/3" in listed.stdout
    account = _bf(client, "account", cwd=tmp_path)
    assert account.returncode == 0 and f"balance {100_000 - 30} credits" in account.stdout
    sessions = _bf(client, "sessions", "ls", cwd=tmp_path)
    assert sessions.returncode == 0 and sessions.stdout.startswith("ID")

    late = _bf(client, "jobs", "cancel", job_id, cwd=tmp_path)
    assert late.returncode == 1 and "HTTP 409" in late.stderr


def test_ctrl_c_while_watching_leaves_the_job_running(client, site, tmp_path):
    (tmp_path / "urls.txt").write_text(
        "\n".join(f"{site.url}/p/{n}?ms=700" for n in range(1, 9)), encoding="utf-8"
    )
    submitted = _bf(client, "jobs", "submit", "urls.txt", "--max-concurrency", "1", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    watcher = subprocess.Popen(
        with_sigint_default([BF, "jobs", "watch", job_id]),
        env=_env(client),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(
        lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "running", timeout=30, message="running"
    )
    assert watcher.stderr is not None
    assert watcher.stderr.readline().startswith(f"Watching job {job_id}")
    watcher.send_signal(signal.SIGINT)
    _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 130, err
    assert "keeps running" in err
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    wait_job(client, job_id)
