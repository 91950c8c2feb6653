"""Database helpers shared by every app: a bounded retry of a transaction that lost a conflict."""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import OperationalError, connection

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back as a
# whole and may simply run again.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})
CONFLICT_ATTEMPTS = 3


def is_conflict(exc: BaseException) -> bool:
    return getattr(getattr(exc, "__cause__", None), "sqlstate", None) in CONFLICT_SQLSTATES


def retry_on_conflict(func: Callable[P, R]) -> Callable[P, R]:
    """Run `func` (one whole transaction) again when PostgreSQL rolled it back for a deadlock or a
    serialization failure: at most CONFLICT_ATTEMPTS times, with a short random pause.

    Only the outermost transaction can be retried (inside another one, the rollback undid the
    caller's work too), so inside an atomic block the error goes up unchanged. Work sent out of
    the process belongs in `transaction.on_commit`, which a rolled-back attempt never runs.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                if attempt == CONFLICT_ATTEMPTS or connection.in_atomic_block or not is_conflict(exc):
                    raise
                logger.warning("%s lost a conflict (attempt %d), running it again: %s",
                               func.__qualname__, attempt, exc)  # fmt: skip
                time.sleep(random.uniform(0.005, 0.05) * attempt)  # noqa: S311 (jitter, not a secret)
        raise AssertionError("unreachable")

    return wrapper
