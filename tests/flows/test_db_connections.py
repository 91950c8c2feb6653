"""Database connections follow the work, not the actions: a worker reuses its pooled connections.

Before the pools (issue 20), the actions worker's threads opened a PostgreSQL connection for each
action task and closed it after: a backend fork, authentication and cold caches per action.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
from django.db import connection

from project.redis import get_redis
from tests.support.creates import create_session
from tests.support.processes import wait_until
from workers.action_runner import lock_key

WAIT0 = {"action": {"type": "wait", "ms": 0}}


def _sessions_opened() -> int:
    """Connections ever opened to the test database (PostgreSQL's own count), read on a
    connection of its own so that the reading itself is not a new one on the counted side."""
    params = {k: v for k, v in connection.get_connection_params().items() if k != "pool"}
    with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", [connection.settings_dict["NAME"]]
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_actions_on_several_sessions_open_no_connection_each(client):
    sessions = [create_session(client) for _ in range(2)]
    for session_id in sessions:  # warm: the worker's pool has its connections
        assert client.post(f"/v1/computers/{session_id}/execute", WAIT0).json()["status"] == "success"
    before = _sessions_opened()

    def act(session_id: str) -> list[str]:
        return [client.post(f"/v1/computers/{session_id}/execute", WAIT0).json()["status"] for _ in range(20)]

    with ThreadPoolExecutor(len(sessions)) as pool:
        statuses = [s for answers in pool.map(act, sessions) for s in answers]
    assert statuses == ["success"] * 40
    for session_id in sessions:
        wait_until(lambda s=session_id: not get_redis().exists(lock_key(s)), timeout=20, message="drained")
    opened = _sessions_opened() - before
    # Before the pools: about one per action (40 here). The web side (the test's live server)
    # and Beat's periodic tasks may open a few.
    assert opened <= 10, f"{opened} new PostgreSQL connections for 40 actions"
