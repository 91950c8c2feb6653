"""Redis keys of the operator's proxy pool that the egress filter writes and others read (issue 24).

Here, below every app, because the filter (workers/egress) writes them and the ops dashboard
(ops/selectors.py) reads them, and neither may import the other.

- `bf:proxy-pool-health`: `host:port` -> `{"up": bool, "at": epoch seconds}`, what the filters'
  probes last saw (workers/egress/pool_probe.py).
- `bf:proxy-pool-bytes:<UTC day>`: pool member name (`pool-de-2`) -> bytes carried that day, both
  ways, by every filter (workers/egress/metering.py); kept POOL_BYTES_TTL_SECONDS.
"""

from __future__ import annotations

from datetime import date

POOL_HEALTH_KEY = "bf:proxy-pool-health"
POOL_BYTES_PREFIX = "bf:proxy-pool-bytes:"
POOL_BYTES_TTL_SECONDS = 8 * 24 * 3600


def pool_bytes_key(day: date) -> str:
    return f"{POOL_BYTES_PREFIX}{day.isoformat()}"
