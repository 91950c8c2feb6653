"""The redaction rule itself, for every screenshot URL the API serves (issue 19 item 11)."""

from __future__ import annotations

import logging

from project.access_log import RedactUrlTokens, redact


def test_action_and_job_screenshot_tokens_are_redacted():
    line = 'GET /v1/job-screenshots/abc.DEF_123:xyz.png HTTP/1.1" 200 "https://h/v1/screenshots/tok-1.png"'
    assert redact(line) == (
        'GET /v1/job-screenshots/<redacted>.png HTTP/1.1" 200 "https://h/v1/screenshots/<redacted>.png"'
    )


def test_djangos_request_log_of_a_job_screenshot_is_redacted():
    record = logging.LogRecord(
        "django.request",
        logging.WARNING,
        __file__,
        1,
        "Not Found: %s",
        ("/v1/job-screenshots/s3cr3t.png",),
        None,
    )
    assert RedactUrlTokens().filter(record)
    assert "s3cr3t" not in record.getMessage()
