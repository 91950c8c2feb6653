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
