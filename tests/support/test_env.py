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
os.environ.pop("SELENIUM_GRID_URL", None)
os.environ.pop("BROWSER_BACKEND", None)
