"""The connection budget: processes x pools must fit in PostgreSQL's max_connections."""

from __future__ import annotations

import pytest

from project.db import (
    ConnectionBudgetExceeded,
    connection_budget,
    connection_budget_check,
    connection_budget_verify,
)

SMALL = {
    "WEB_WORKERS": 2,
    "WEB_THREADS": 32,
    "ACTION_THREADS": 32,
    "LIFECYCLE_CONCURRENCY": 2,
    "JOBS_WORKER_CONCURRENCY": 4,
    "WEBHOOKS_WORKER_CONCURRENCY": 2,
    "WORKER_HOSTS": 1,
    "POSTGRES_POOL_SIZE": 8,
    "POSTGRES_CONNECTION_MARGIN": 10,
}


@pytest.fixture
def configured(settings):
    for name, value in SMALL.items():
        setattr(settings, name, value)
    return settings


def test_pools_bound_threaded_processes_and_prefork_counts_children(configured):
    assert connection_budget() == {
        "web": 16,  # 2 processes x a pool of 8, whatever their 32 threads
        "actions workers": 8,
        "lifecycle workers": 3,  # 2 children and the main process
        "jobs workers": 5,
        "webhooks workers": 3,
        "beat": 1,
        "margin (POSTGRES_CONNECTION_MARGIN)": 10,
    }
    assert connection_budget_check(max_connections=100, reserved=3) == 46


def test_without_pools_every_thread_counts(configured):
    configured.POSTGRES_POOL_SIZE = 0
    parts = connection_budget()
    # An actions worker: its drain threads and its Celery pool's threads, ACTION_THREADS each.
    assert parts["web"] == 64 and parts["actions workers"] == 64


def test_a_fleet_over_max_connections_is_refused_with_the_parts_named(configured):
    configured.WORKER_HOSTS = 6  # 16 + 6 x (8 + 3 + 5 + 3) + 1 + 10
    with pytest.raises(ConnectionBudgetExceeded) as refused:
        connection_budget_check(max_connections=100, reserved=3)
    message = str(refused.value)
    assert "may open 141 PostgreSQL connections" in message
    assert "actions workers 48" in message and "admits 97" in message
    assert "docs/database-connections.md" in message


def test_the_startup_check_reads_the_servers_limits(configured, db):
    connection_budget_verify()  # 43 fit in the test server's limits
    configured.WEB_WORKERS = 1000
    with pytest.raises(ConnectionBudgetExceeded):
        connection_budget_verify()
