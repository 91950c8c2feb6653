"""Django's PostgreSQL backend, with the connection pool's check replaced by one that costs no
round trip for a connection that shows no sign of trouble (project/pg_check.py).

Django builds the pool itself and gives it psycopg_pool's `check_connection` when
CONN_HEALTH_CHECKS is on (it accepts no `check` among the pool options: it would be passed
twice). So the pool it built gets ours instead; with CONN_HEALTH_CHECKS off, none.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

from project.pg_check import check_idle_connection


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> Any:
        pool = super().pool
        # psycopg_pool keeps the check in `_check` (psycopg_pool 3.2; tests/project/test_pg_check.py
        # fails if that changes).
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = check_idle_connection
        return pool
