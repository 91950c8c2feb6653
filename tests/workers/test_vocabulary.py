"""The action vocabulary has one owner (sessions/action_specs.py) and the executor covers it."""

from __future__ import annotations

from sessions.action_specs import CANONICAL
from workers.browser.executor import HANDLED_TYPES


def test_the_executor_runs_every_canonical_action_type_and_no_other():
    assert set(CANONICAL) == set(HANDLED_TYPES)
