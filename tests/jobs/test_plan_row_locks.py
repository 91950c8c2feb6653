"""Accounts on one plan never queue behind each other's locks (issue 19, item 8).

A session create and a job admission lock their account's row (the plan's slots are counted per
account); they read the plan but must not lock its row, or every tenant of a plan waits behind
whichever of them holds it. Another connection holds the lock here, as a concurrent create, an
admission pass or an operator's plan edit would; the call under test runs with a short
`lock_timeout`, so waiting on that lock fails it instead of hanging.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection, transaction

from accounts.models import Account
from accounts.services import account_create


@contextmanager
def held(sql: str, *params: object) -> Iterator[None]:
    """Another connection holds the row lock `sql` takes until the block ends."""
    settings = connection.settings_dict
    with (
        psycopg.connect(
            dbname=settings["NAME"],
            user=settings["USER"],
            password=settings["PASSWORD"] or None,
            host=settings["HOST"],
            port=settings["PORT"] or 5432,
        ) as other,
        other.transaction(),
    ):
        assert other.execute(sql, params).fetchall(), "the lock holder found no row"
        yield


@contextmanager
def lock_timeout() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '1500ms'")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")


class _Rollback(Exception):
    pass


@contextmanager
def rolled_back() -> Iterator[None]:
    """Run the block in a transaction that is never committed: the suite's worker, if another test
    started it, never sees the session or job (nor gets a task to start its browser)."""
    try:
        with transaction.atomic():
            yield
            raise _Rollback
    except _Rollback:
        pass


@pytest.fixture
def two_free_accounts(seeded_committed: None) -> tuple[Account, Account]:
    first, _ = account_create(name="first", plan_name="free", credits=100_000)
    second, _ = account_create(name="second", plan_name="free", credits=100_000)
    assert first.plan_id == second.plan_id
    return first, second


def test_a_create_does_not_wait_on_a_lock_held_on_its_plans_row(two_free_accounts):
    from sessions.services import SessionSpec, session_create

    _, second = two_free_accounts
    with (
        held("SELECT id FROM accounts_plan WHERE id = %s FOR UPDATE", second.plan_id),
        lock_timeout(),
        rolled_back(),
    ):
        session = session_create(account=second, spec=SessionSpec())
    assert session.account_id == second.pk


def test_a_create_does_not_wait_on_another_accounts_create_of_the_same_plan(two_free_accounts):
    from sessions.services import SessionSpec, session_create

    first, second = two_free_accounts
    # What the first account's own create locks (its row, and before the fix its plan's too).
    with (
        held(
            "SELECT a.id FROM accounts_account a JOIN accounts_plan p ON p.id = a.plan_id"
            " WHERE a.id = %s FOR NO KEY UPDATE",
            first.pk,
        ),
        lock_timeout(),
        rolled_back(),
    ):
        session = session_create(account=second, spec=SessionSpec())
    assert session.account_id == second.pk


def test_job_admission_does_not_wait_on_a_lock_held_on_the_plans_row(two_free_accounts):
    from jobs.services import JobSpec, job_submit
    from jobs.services.admission import _admit_account

    _, second = two_free_accounts
    with rolled_back():
        job, _ = job_submit(account=second, spec=JobSpec(items=[{"url": "http://127.0.0.1:9/"}], scrape={}))
        with held("SELECT id FROM accounts_plan WHERE id = %s FOR UPDATE", second.plan_id), lock_timeout():
            started = _admit_account(second.pk)
        assert len(started) == 1
        job.refresh_from_db()
        assert job.status == "running"
