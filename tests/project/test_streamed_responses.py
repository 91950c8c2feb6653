"""Responses streamed from a sync iterator under the web process's ASGI server (project/asgi.py):
the body goes out as it is made, and making it holds neither the process's shared sync thread
nor the whole body in memory.

Django's ASGI handler reads a sync iterator whole (`sync_to_async(list)`, on asgiref's one sync
thread) before sending a byte: a job export of many MB was in memory at once, and while it was
read every other request of that process waited at its start (Django's request_started signal
runs its sync receivers on that same thread). Each test below stops the export's generator half
way on a gate and shows the client already has the first half, and another request is answered,
before the gate opens: on the old handler both reads time out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from jobs.api import exports
from jobs.models import ItemStatus, JobItem
from jobs.services import JobSpec, job_submit
from project.web_threads import STREAM_BATCH_BYTES

ROWS = 40


@pytest.fixture
def gated_export(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The API's JSONL export stops after ROWS // 2 lines until the returned gate is set."""
    gate = threading.Event()
    real = exports.jsonl_lines

    def gated(rows: Iterator[JobItem], screenshot_url: Any) -> Iterator[str]:
        for n, line in enumerate(real(rows, screenshot_url)):
            if n == ROWS // 2:
                assert gate.wait(timeout=60), "the test never opened the gate"
            yield line

    monkeypatch.setattr(exports, "jsonl_lines", gated)
    return gate


def test_an_export_streams_as_it_is_made_and_other_requests_are_answered_meanwhile(
    make_api_client: Any, gated_export: threading.Event
) -> None:
    client = make_api_client(plan="pro")
    urls = [{"url": f"http://127.0.0.1:9/{n}"} for n in range(ROWS)]
    job, _ = job_submit(account=client.account, spec=JobSpec(items=urls, scrape={}))
    # A line is an eighth of the server's read batch: the first half is 2.5 batches.
    text = "x" * (STREAM_BATCH_BYTES // 8)
    JobItem.objects.filter(job=job).update(status=ItemStatus.SUCCEEDED, data={"text": text})

    export = requests.get(
        f"{client.base_url}/v1/jobs/{job.pk}/results",
        params={"format": "jsonl"},
        headers={"Authorization": f"Bearer {client.key}"},
        stream=True,
        timeout=10,
    )
    try:
        assert export.status_code == 200, export.text
        lines = export.iter_lines()
        first = [next(lines) for _ in range(ROWS // 4)]  # while the generator waits at the gate
        assert all(b'"status":"succeeded"' in line for line in first)
        # Another request of the same process is answered while the export is stopped.
        other = client.get("/v1/jobs")
        assert other.status_code == 200, other.text
        gated_export.set()
        rest = list(lines)
    finally:
        gated_export.set()
        export.close()
    assert len(first) + len(rest) == ROWS
    assert len({line.split(b'"url":"', 1)[1].split(b'"', 1)[0] for line in first + rest}) == ROWS
