"""Logs without URL credentials.

Some URLs need no API key because a signed token in the path is the credential: screenshots
(`/v1/screenshots/<token>.png`, `/v1/job-screenshots/<token>.png`) and the live viewer
(`/v1/live/<token>` and its feed), recording replays (`/v1/replay/<token>`). Access logs are read
and shipped more widely than the data they describe, so the token is replaced before a line is
written: by the web server's access log (uvicorn's `uvicorn.access` logger under gunicorn,
project/asgi_worker.py; gunicorn's own access log through `--logger-class
project.access_log.RedactingLogger`) and by Django's request log.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]  # gunicorn ships no types

# Action screenshots (/v1/screenshots/), job screenshots (/v1/job-screenshots/) and the live
# viewer (/v1/live/): the whole path segment, whatever characters the token is made of, up to a
# `.png` of screenshots.
_TOKEN = re.compile(r"(/(?:screenshots|job-screenshots|live|replay)/)[^/?#\s\"']+?(\.png)?(?=[/?#\s\"']|$)")
_MARKERS = ("screenshots/", "/live/", "/replay/")


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1<redacted>\2", text) if any(m in text for m in _MARKERS) else text


class RedactingLogger(Logger):  # type: ignore[misc]  # untyped base class
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: redact(v) if isinstance(v, str) else v for k, v in atoms.items()}


class RedactUrlTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(m in message for m in _MARKERS):
            record.msg, record.args = redact(message), None
        return True
