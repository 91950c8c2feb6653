"""Loaded with `-p` before pytest-django reads the settings: the test configuration.

Tests get their own Redis database, so a development worker on the same Redis never takes
their tasks, and their own browser profile root, so reconcile never touches other browsers.
"""

import os
import random
import socket
import tempfile

_chosen: set[int] = set()


def _fixed_port() -> int:
    """A port for a server that a test starts later at an address fixed now (in the settings):
    below the kernel's ephemeral range, so that no outgoing connection of the run (their local
    ports come from that range) can hold it when the server binds; free when chosen."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            low = int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        if port in _chosen:
            continue
        with socket.socket() as candidate:
            try:
                candidate.bind(("127.0.0.1", port))
            except OSError:
                continue
        _chosen.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


os.environ["BROWSERFLEET_ENV"] = "test"
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("BROWSER_PROFILE_ROOT", tempfile.mkdtemp(prefix="bf-test-browsers-"))
os.environ.setdefault("SESSION_SWEEP_INTERVAL_SECONDS", "1")
os.environ.setdefault("RECONCILE_INTERVAL_SECONDS", "2")
# Tests call the billing service themselves; a background run would race their table flushes.
os.environ.setdefault("BILLING_INTERVAL_SECONDS", "3600")
os.environ["ALLOW_PRIVATE_NETWORK_TARGETS"] = "false"
# The suite's worker host keeps no warm pool: each test's table flush would forget it and its
# browsers be restarted for every test. tests/flows/test_fleet.py runs hosts with pools.
os.environ.setdefault("BROWSER_POOL_SIZE", "0")
os.environ.setdefault("HOST_HEARTBEAT_SECONDS", "1")
# Generous on a loaded machine: a heartbeat late by seconds must not end a host's sessions.
os.environ.setdefault("HOST_DEAD_AFTER_SECONDS", "8")
# Batch jobs: a quick Beat tick and short leases, so lost pages come back within seconds.
os.environ.setdefault("JOB_TICK_INTERVAL_SECONDS", "1")
os.environ.setdefault("JOB_ITEM_LEASE_SECONDS", "6")
os.environ.setdefault("JOB_BROWSER_LEASE_SECONDS", "10")
os.environ.setdefault("JOB_RETRY_BACKOFF_SECONDS", "1")
# Short slices, so that jobs in tests go through the queue-again path.
os.environ.setdefault("JOB_TASK_SLICE_SECONDS", "5")
os.environ.setdefault("WEBHOOK_RETRY_BACKOFF_SECONDS", "1")
os.environ.setdefault("WEBHOOK_MAX_ATTEMPTS", "3")
os.environ.setdefault("WEBHOOK_TIMEOUT_SECONDS", "3")
os.environ.setdefault("WEBHOOK_SWEEP_INTERVAL_SECONDS", "1")
# The sandbox firewall matches a whole uid range for the machine: tests whose browsers share this
# machine with other checkouts' must not install it for the common range (a checkout whose
# browsers still use a DevTools port would lose it). tests/workers/test_sandbox_firewall.py
# installs it for a range of its own and removes it.
os.environ.setdefault("BROWSER_SANDBOX_FIREWALL", "off")
os.environ.pop("SELENIUM_GRID_URL", None)
os.environ.pop("BROWSER_BACKEND", None)

# Every browser goes through the egress filter (tests/conftest.py starts one for the session).
# Browsers (and the navigation check) may reach the pages the tests serve on 127.0.0.1 and nothing
# else private: 127.0.0.2 and up stand for the internal hosts a tenant must not reach.
os.environ["BROWSER_EGRESS_ENABLED"] = "true"
os.environ["BROWSER_EGRESS_HOST"] = "127.0.0.1"
# The batch jobs' test site (tests/jobs/conftest.py) listens on a port chosen here, so that the
# name `proxied.test` on that port can be allowed too: a name that resolves nowhere, which only a
# test's upstream proxy (every name is 127.0.0.1 to it) can reach; a page there went through it.
os.environ.setdefault("BF_TEST_SITE_PORT", str(_fixed_port()))
os.environ["BROWSER_EGRESS_ALLOW"] = f"127.0.0.1/32,proxied.test:{os.environ['BF_TEST_SITE_PORT']}"
# A fresh port, never one that a development filter may hold.
os.environ["BROWSER_EGRESS_PORT"] = str(_fixed_port())

# Upstream proxies (docs/proxies.md): the worker writes route files here, the filter reads them.
os.environ.setdefault("EGRESS_ROUTES_DIR", tempfile.mkdtemp(prefix="bf-test-routes-"))
# The operator's pool: two proxies of the tests' own (tests/support/upstream_proxies.py) that
# tests/flows/test_proxies.py starts on these ports; the second asks for credentials.
_pool_ports = [_fixed_port(), _fixed_port()]
os.environ.setdefault(
    "ADVANCED_PROXY_URLS",
    f"us=http://127.0.0.1:{_pool_ports[0]},de=http://pool-user:pool-s3cret@127.0.0.1:{_pool_ports[1]}",
)
# The pool's active probe (workers/egress/pool_probe.py) stays off in the suite's filter: members
# that tests start and stop would be judged between a test's start and its first request.
# tests/workers/test_egress_pool_probe.py runs filters of its own with it on.
os.environ.setdefault("PROXY_PROBE_SECONDS", "0")
