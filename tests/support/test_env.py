"""Loaded with `-p` before pytest-django reads the settings: the test configuration.

Tests get their own Redis database, so a development worker on the same Redis never takes
their tasks, and their own browser profile root, so reconcile never touches other browsers.
"""

import os
import tempfile

os.environ["BROWSERFLEET_ENV"] = "test"
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("BROWSER_PROFILE_ROOT", tempfile.mkdtemp(prefix="bf-test-browsers-"))
os.environ.setdefault("SESSION_SWEEP_INTERVAL_SECONDS", "1")
os.environ.setdefault("RECONCILE_INTERVAL_SECONDS", "2")
# Tests call the billing service themselves; a background run would race their table flushes.
os.environ.setdefault("BILLING_INTERVAL_SECONDS", "3600")
os.environ.setdefault("ALLOW_PRIVATE_NETWORK_TARGETS", "true")
# The suite's worker host keeps no warm pool: each test's table flush would forget it and its
# browsers be restarted for every test. tests/flows/test_fleet.py runs hosts with pools.
os.environ.setdefault("BROWSER_POOL_SIZE", "0")
os.environ.setdefault("HOST_HEARTBEAT_SECONDS", "1")
# Generous on a loaded machine: a heartbeat late by seconds must not end a host's sessions.
os.environ.setdefault("HOST_DEAD_AFTER_SECONDS", "8")
os.environ.pop("SELENIUM_GRID_URL", None)
os.environ.pop("BROWSER_BACKEND", None)
