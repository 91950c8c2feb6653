"""The browser's side of the egress filter (workers/egress): launch flags, readiness, refusals.

Imports nothing from mitmproxy: the constants it shares with the filter live in
workers.egress.
"""

from __future__ import annotations

import http.client
from typing import Any

from django.conf import settings

from workers.browser.errors import BrowserStartError
from workers.egress import BLOCKED_ELEMENT_ID, BLOCKED_TITLE, HEALTH_BODY, HEALTH_HOST

# One script after a navigation: is this the filter's refusal page? Null when it is not.
REFUSAL_SCRIPT = f"""
const p = document.title === {BLOCKED_TITLE!r} && document.getElementById({BLOCKED_ELEMENT_ID!r});
return p ? {{code: p.dataset.code || "blocked_address", detail: p.textContent}} : null;
"""


def proxy_url() -> str:
    return f"http://{settings.BROWSER_EGRESS_HOST}:{settings.BROWSER_EGRESS_PORT}"


def chromium_args() -> list[str]:
    """Chromium flags that send all its traffic through the filter, or none when it is off."""
    if not settings.BROWSER_EGRESS_ENABLED:
        return []
    return [
        f"--proxy-server={proxy_url()}",
        # Without this Chromium goes straight to loopback and link-local, skipping the proxy.
        "--proxy-bypass-list=<-loopback>",
        # QUIC is UDP, which an HTTP proxy does not carry (also in CHROMIUM_ARGS; kept here so
        # the filter's guarantee does not depend on that list).
        "--disable-quic",
        # WebRTC may only use the proxy: no UDP of its own, no local address candidates.
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    ]


def chromium_prefs() -> dict[str, Any]:
    if not settings.BROWSER_EGRESS_ENABLED:
        return {}
    return {"webrtc": {"ip_handling_policy": "disable_non_proxied_udp", "multiple_routes_enabled": False}}


def ensure_ready(timeout: float = 3.0) -> None:
    """Raise BrowserStartError unless the filter answers its health check.

    Called before every browser start: a browser must never run unfiltered. One local round
    trip (about a millisecond).
    """
    if not settings.BROWSER_EGRESS_ENABLED:
        return
    host, port = settings.BROWSER_EGRESS_HOST, settings.BROWSER_EGRESS_PORT
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", f"http://{HEALTH_HOST}/", headers={"Host": HEALTH_HOST})
        response = connection.getresponse()
        body = response.read(256)
    except OSError as exc:
        raise BrowserStartError(
            f"The egress filter at {host}:{port} does not answer ({exc}); no browser starts without it"
        ) from exc
    finally:
        connection.close()
    if response.status != 200 or body != HEALTH_BODY:
        raise BrowserStartError(
            f"{host}:{port} is not the egress filter (health check answered {response.status}); "
            "no browser starts without it"
        )


def refusal(driver: Any) -> dict[str, str] | None:
    """The filter's refusal on the current page ({code, detail}), or None. One script."""
    if not settings.BROWSER_EGRESS_ENABLED:
        return None
    found = driver.execute_script(REFUSAL_SCRIPT)
    if not isinstance(found, dict):
        return None
    return {"code": str(found.get("code") or "blocked_address"), "detail": str(found.get("detail") or "")}


def error_code(exc: BaseException) -> str:
    """The machine-readable code an error carries along its cause chain ("" when none)."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "error_code", "")
        if code:
            return str(code)
        seen = seen.__cause__
    return ""
