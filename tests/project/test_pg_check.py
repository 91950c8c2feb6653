"""The pool's check of a connection it hands out: no round trip for an idle connection with
nothing to read; the full check (which discards it) for one PostgreSQL has ended."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from project.pg_check import check_idle_connection
from tests.support.processes import wait_until


def _connect() -> psycopg.Connection:
    params = connection.get_connection_params()
    return psycopg.connect(**params, autocommit=True)


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[psycopg.Connection]:
    """The connections psycopg_pool's own check (an empty query) was run on."""
    seen: list[psycopg.Connection] = []
    real = ConnectionPool.check_connection

    def recording(conn: psycopg.Connection) -> None:
        seen.append(conn)
        real(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(recording))
    return seen


def test_the_pool_django_builds_checks_with_ours(db) -> None:
    pool = connection.pool
    if pool is None:
        pytest.fail("the tests run with a connection pool (POSTGRES_POOL_SIZE > 0)")
    assert pool._check is check_idle_connection


def test_an_idle_connection_with_nothing_to_read_is_handed_out_without_a_round_trip(
    db, full_checks: list[psycopg.Connection]
) -> None:
    with _connect() as conn:
        conn.execute("SELECT 1")
        check_idle_connection(conn)
        assert full_checks == []


def test_a_connection_postgresql_ended_fails_the_check(db, full_checks: list[psycopg.Connection]) -> None:
    with _connect() as conn, _connect() as other:
        pid = conn.info.backend_pid
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        # PostgreSQL tells the ended connection (a FATAL message, then it closes the socket).
        wait_until(lambda: _readable(conn), timeout=5, message="the termination to reach the socket")
        with pytest.raises(psycopg.OperationalError):
            check_idle_connection(conn)
        assert full_checks == [conn]


def test_a_connection_in_a_transaction_gets_the_full_check(db, full_checks: list[psycopg.Connection]) -> None:
    with _connect() as conn:
        conn.autocommit = False
        conn.execute("SELECT 1")  # a transaction is open
        with pytest.raises(psycopg.Error):
            check_idle_connection(conn)  # the full check's autocommit switch refuses it
        assert full_checks == [conn]


def _readable(conn: psycopg.Connection) -> bool:
    import select

    return bool(select.select([conn.fileno()], [], [], 0)[0])
