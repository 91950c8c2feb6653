"""One delivery attempt: sign the event and POST it through the egress filter.

Deliveries never open a socket to the receiver themselves: every request goes to the egress
filter (workers/egress, the HTTP proxy every browser uses), which resolves the receiver's name,
refuses private, loopback, link-local and metadata addresses unless BROWSER_EGRESS_ALLOW lists
them, and connects to the address it checked (pinned: a DNS answer that changes after the check
is never looked up again). HTTPS goes through a CONNECT tunnel; TLS is verified here, end to end.

Redirects are never followed (a 3xx is the receiver's answer, reported as `HTTP 303`). The
outcome a tenant sees is coarse on purpose: `delivered`, `HTTP <code>` or `failed`; the reason
behind `failed` (refused by the filter, connection refused, timed out) stays in our logs, since a
socket error would tell a tenant what listens on the service's own network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

# workers/egress/__init__.py BLOCKED_HEADER (this app sits below workers and cannot import it):
# the filter's own refusal, which must not read as the receiver's 403.
EGRESS_BLOCKED_HEADER = "X-Browserfleet-Blocked"
USER_AGENT = "Browserfleet-Webhooks/1"
SECRET_PREFIX = "whsec_"  # noqa: S105  (the format's prefix, not a secret)


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (Standard Webhooks)."""
    raw = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(raw + "=" * (-len(raw) % 4))


def signature(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, as Standard Webhooks defines it."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers_for(*, msg_id: str, timestamp: int, body: bytes, secrets: list[str]) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
    }
    signatures = [signature(s, msg_id=msg_id, timestamp=timestamp, body=body) for s in secrets if s]
    if signatures:
        headers["webhook-signature"] = " ".join(signatures)
    return headers


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None  # the receiver's answer; None when there was none
    error: str  # "" when delivered, else "HTTP <code>" or "failed"
    retryable: bool
    retry_after: float | None  # seconds, from a 429's or 503's Retry-After
    latency_ms: int
    reason: str  # for our logs only


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


_client: httpx.Client | None = None


def _http() -> httpx.Client:
    """One client per worker process (its connections to the filter are reused)."""
    global _client
    if _client is None:
        timeout = float(settings.WEBHOOK_TIMEOUT_SECONDS)
        _client = httpx.Client(
            proxy=f"http://{settings.BROWSER_EGRESS_HOST}:{settings.BROWSER_EGRESS_PORT}",
            # Never the environment's proxies or no_proxy: the filter is the only way out.
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            headers={"Accept": "*/*"},
        )
    return _client


def post(*, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST once. Each read waits WEBHOOK_TIMEOUT_SECONDS at most; the whole attempt is bounded
    by the task's time limits (workers/webhook_tasks.py), which a trickling receiver meets."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with _http().stream("POST", url, content=body, headers=headers) as response:
            # The body is not read: a receiver's answer is its status code.
            code = response.status_code
            blocked = response.headers.get(EGRESS_BLOCKED_HEADER)
            retry_after = _retry_after(response.headers.get("Retry-After"))
    except httpx.TimeoutException as exc:
        return Outcome(False, None, "failed", True, None, took(), f"timeout: {type(exc).__name__}")
    except httpx.ProxyError as exc:
        # The filter refused the tunnel (a forbidden address) or could not open it.
        return Outcome(False, None, "failed", True, None, took(), f"proxy: {exc}")
    except (httpx.TransportError, OSError) as exc:
        return Outcome(False, None, "failed", True, None, took(), f"transport: {type(exc).__name__}: {exc}")
    if blocked:
        # Retried like a connection error: each attempt is checked again.
        return Outcome(False, None, "failed", True, None, took(), f"refused by the egress filter: {blocked}")
    if 200 <= code < 300:
        return Outcome(True, code, "", False, None, took(), "delivered")
    retryable = code == 429 or code >= 500
    return Outcome(
        False, code, f"HTTP {code}", retryable, retry_after if retryable else None, took(), f"HTTP {code}"
    )
