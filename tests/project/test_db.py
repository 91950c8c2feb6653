"""The conflict retry, on a real deadlock between two PostgreSQL transactions."""

from __future__ import annotations

import threading

import pytest
from django.db import OperationalError, connection, transaction

from accounts.services import account_create
from billing.models import Balance
from project.db import retry_on_conflict


@pytest.fixture
def accounts_committed(transactional_db: None, plans: None) -> None:
    """Committed rows: the transactions below run in threads, on connections of their own."""


def _lock_both(first: int, second: int, barrier: threading.Barrier, calls: list[str], name: str) -> None:
    calls.append(name)
    with transaction.atomic():
        Balance.objects.select_for_update().get(account_id=first)
        if len(calls) <= 2:  # only the first attempts meet at the barrier, in opposite orders
            barrier.wait(timeout=10)
        Balance.objects.select_for_update().get(account_id=second)


def test_a_transaction_that_loses_a_deadlock_runs_again_and_succeeds(accounts_committed):
    a = account_create(name="a", plan_name="free", credits=1)[0].pk
    b = account_create(name="b", plan_name="free", credits=1)[0].pk
    barrier = threading.Barrier(2)
    calls: list[str] = []
    errors: list[BaseException] = []
    retried = retry_on_conflict(_lock_both)

    def run(first: int, second: int, name: str) -> None:
        try:
            retried(first, second, barrier, calls, name)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(a, b, "ab")),
        threading.Thread(target=run, args=(b, a, "ba")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(calls) == 3, calls  # both once, and the loser of the deadlock once more


def test_inside_an_outer_transaction_the_conflict_goes_up_unchanged(accounts_committed):
    attempts = []

    @retry_on_conflict
    def conflicting() -> None:
        attempts.append(1)
        with connection.cursor() as cursor:
            cursor.execute("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$")

    with pytest.raises(OperationalError), transaction.atomic():
        conflicting()
    assert attempts == [1]
    with pytest.raises(OperationalError):
        conflicting()
    assert len(attempts) == 1 + 3
