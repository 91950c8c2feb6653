"""The egress filter: an HTTP proxy in front of every browser, run as its own process.

`python -m workers.egress` (or `bin/dev egress`). Chromium sends everything through it
(workers/browser/options.py); it refuses connections to addresses that project/netpolicy.py
forbids. It needs only the environment, not Django. See filter.py for how.
"""

# Shared with the worker, which must not import mitmproxy: how a refusal looks to a browser.
BLOCKED_HEADER = "X-Browserfleet-Blocked"
# The worker recognises a refused navigation by this page title and element (filter.py).
BLOCKED_TITLE = "Blocked by the Browserfleet egress filter"
BLOCKED_ELEMENT_ID = "browserfleet-blocked"
# Requests for this name are answered by the filter itself: the worker's health check. The
# .invalid top-level domain never resolves, so no real site can be shadowed.
HEALTH_HOST = "egress-health.browserfleet.invalid"
HEALTH_BODY = b"browserfleet-egress ok\n"
DEFAULT_PORT = 3128
# The sandbox uids browsers run as: BROWSER_SANDBOX_UID_BASE (default below) and the next
# SANDBOX_UID_SPAN - 1 (workers/browser/sandbox.py leases them; the filter refuses one without a
# route file, routes.py).
SANDBOX_UID_SPAN = 50_000
DEFAULT_SANDBOX_UID_BASE = 200_000


def sandbox_uids(environ: dict[str, str]) -> range:
    """The sandbox uid range from the environment (BROWSER_SANDBOX_UID_BASE)."""
    base = int(environ.get("BROWSER_SANDBOX_UID_BASE") or DEFAULT_SANDBOX_UID_BASE)
    return range(base, base + SANDBOX_UID_SPAN)
