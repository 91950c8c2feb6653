"""`bin/dev web` (gunicorn with uvicorn workers, its access log on stdout) never writes a URL
credential: screenshot tokens, nor the live viewer's tokens (`/v1/live/<token>`)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import requests
from django.core.files.storage import default_storage

from sessions.screenshots import screenshot_path_of, screenshot_save
from tests.conftest import free_port
from tests.support.processes import REPO, stop_process


def test_screenshot_tokens_are_not_written_to_the_logs(tmp_path: Path):
    port = free_port()
    log = tmp_path / "web.log"
    env = {**os.environ, "BIND": f"127.0.0.1:{port}", "WEB_WORKERS": "1", "WEB_THREADS": "2"}
    token = screenshot_save(b"\x89PNG\r\n\x1a\n")  # a live screenshot URL: 200
    with log.open("wb") as out:
        web = subprocess.Popen(
            ["bin/dev", "web"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(base + "/v1/nothing-here", timeout=30)
                break
            except requests.ConnectionError:
                assert web.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        forged = "forged" + "x" * 40  # a 404, which Django's request log writes too
        job_forged = "jobforged" + "y" * 40  # a job's screenshot URL (issue 19 item 11)
        for path, status in (
            (f"/v1/screenshots/{token}.png", 200),
            (f"/v1/screenshots/{forged}.png", 404),
            (f"/v1/job-screenshots/{job_forged}.png", 404),
        ):
            url = base + path
            assert requests.get(url, headers={"Referer": url}, timeout=10).status_code == status
        viewer = "viewer" + "y" * 40
        assert requests.get(f"{base}/v1/live/{viewer}", timeout=10).status_code == 404
        deadline = time.monotonic() + 10
        while (
            log.read_text().count("screenshots/") < 3 or "/v1/live/" not in log.read_text()
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop_process(web)
        path = screenshot_path_of(token)
        if path:
            default_storage.delete(path)
    text = log.read_text()
    assert text.count("GET /v1/screenshots/<redacted>.png") == 2, text
    assert text.count("GET /v1/job-screenshots/<redacted>.png") == 1, text
    assert "GET /v1/live/<redacted>" in text, text
    assert token not in text and forged not in text and job_forged not in text and viewer not in text, text
