"""Plain SQL for the few statements on every action's path.

The ORM costs about a millisecond of Python per statement on a small machine, and Django binds
parameters on the client, so PostgreSQL parses and plans every statement anew (0.7 ms for the
accept statement, more than it takes to run). The hot path (authenticating, accepting an
action, a worker claiming and finishing one) writes its SQL by hand, runs it through
`hot_cursor`, whose statements the server prepares once per connection, and turns rows back into
model instances here, exactly as the ORM would have loaded them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connection, models
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.utils import CursorWrapper

M = TypeVar("M", bound=models.Model)


def select_list(model: type[models.Model], alias: str) -> str:
    """Every concrete column of `model`, qualified by `alias`, in field order."""
    return ", ".join(f'{alias}."{field.column}"' for field in model._meta.concrete_fields)


def from_row(model: type[M], values: Sequence[Any]) -> M:
    """An instance of `model` from the values of `select_list(model, ...)`, converted like the ORM."""
    fields = model._meta.concrete_fields
    converted = [
        field.from_db_value(value, None, connection)  # JSON arrives as text: Django decodes it
        if value is not None and hasattr(field, "from_db_value")
        else value
        for field, value in zip(fields, values, strict=True)
    ]
    return model.from_db("default", [field.attname for field in fields], converted)


def as_loaded(instance: M) -> M:
    """Mark an instance built by hand from a row the way the ORM marks what it loads."""
    instance._state.adding = False
    instance._state.db = "default"
    return instance


def json_value(value: Any) -> Any:
    """A JSON column read by hand (arrives as text, as Django configures psycopg)."""
    return json.loads(value) if isinstance(value, str) else value


# A condition that is always true and, as it is evaluated, lets the statement's own transaction
# commit without waiting for PostgreSQL to flush its WAL to disk (synchronous_commit off, for
# this transaction only). Such a commit costs ~0.1 ms instead of an fdatasync (1-2 ms here under
# load): the worker's bookkeeping of an action (claim, lease, progress, finish) is two of the
# three commits of every action. What a crash of PostgreSQL itself may lose is the last few
# hundred milliseconds of these (3 x wal_writer_delay), never a committed accept or a refund,
# whose synchronous commits flush every earlier record too; docs/benchmarks.md, "Commits".
# Only where a write is evaluated at all, so only in a WHERE clause of the writing statement.
NO_FLUSH_WAIT = "(SELECT set_config('synchronous_commit', 'off', true)) = 'off'"


def hot_cursor() -> CursorWrapper:
    """A cursor on Django's connection that binds parameters on the server.

    psycopg prepares a statement the fifth time a connection runs it (`prepare_threshold` in
    DATABASES OPTIONS; None turns preparing off, for PgBouncer in transaction mode), and runs it
    without parsing or planning after that. Errors, transactions and connection health are
    Django's, as with `connection.cursor()`; parameters use the named `%(name)s` style.
    """
    connection.ensure_connection()
    with connection.wrap_database_errors:
        # django-stubs declare no arguments; it is psycopg's ServerCursor-free Cursor(connection).
        return CursorWrapper(ServerBindingCursor(connection.connection), connection)  # type: ignore[call-arg]
