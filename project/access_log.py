"""Logs without screenshot tokens.

A screenshot URL needs no API key: its signed token is the credential, and it sits in the path
(`/v1/screenshots/<token>.png`, a job's `/v1/job-screenshots/<token>.png`). Access logs are read
and shipped more widely than the data they describe, so the token is replaced before a line is
written: by gunicorn's access log (`--logger-class project.access_log.RedactingLogger`) and by
Django's request log.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]  # gunicorn ships no types

# Action screenshots (/v1/screenshots/) and job screenshots (/v1/job-screenshots/): the whole
# path segment, whatever characters the token is made of, up to its `.png`.
_TOKEN = re.compile(r"(/(?:job-)?screenshots/)[^/?#\s\"']+?(\.png)?(?=[/?#\s\"']|$)")


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1<redacted>\2", text) if "screenshots/" in text else text


class RedactingLogger(Logger):  # type: ignore[misc]  # untyped base class
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: redact(v) if isinstance(v, str) else v for k, v in atoms.items()}


class RedactScreenshotTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "screenshots/" in message:
            record.msg, record.args = redact(message), None
        return True
