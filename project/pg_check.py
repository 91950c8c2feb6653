"""The psycopg pool's check of a connection it is about to hand out, without a round trip when
the connection shows no sign of trouble.

psycopg_pool's own check (`ConnectionPool.check_connection`) sends an empty query and waits for
PostgreSQL's answer: one round trip for every request of the web and every task of the actions
worker, each a PostgreSQL backend woken up on a machine whose cores the browsers want (about 4 %
of the web's samples during `bin/dev bench action_roundtrip`, py-spy, docs/benchmarks.md).

A connection idle in the pool has nothing to read: PostgreSQL sends nothing on an idle
connection unless it is ending it (a restart or a terminated backend sends its FATAL error, then
closes; a crashed server's socket reads as closed). So a socket with nothing to read, on a
connection psycopg still holds open and idle, is handed out as it is; one with anything to read
(or not idle, or closed) gets the full check, which reads what came and discards the connection
if it was ended. What this does not see, the empty query would not have seen either in time: a
peer gone without a word (a cut network) makes both wait for TCP's own timeouts.

Imported by the settings: nothing from Django here.
"""

from __future__ import annotations

import select

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool


def check_idle_connection(conn: psycopg.Connection) -> None:
    """Return if `conn` may be handed out; raise (the pool discards it and takes another) if not."""
    if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE or _has_input(conn):
        ConnectionPool.check_connection(conn)


def _has_input(conn: psycopg.Connection) -> bool:
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True  # no usable socket: let the full check say what is wrong
    return bool(readable)
