"""What the console's pages show, read from the apps below (every query starts from the account)."""

from __future__ import annotations

from typing import Any

from accounts.models import Account
from billing.selectors import balance_of
from sessions.selectors import live_session_count


def overview_numbers(*, account: Account) -> dict[str, Any]:
    return {
        "balance": balance_of(account_id=account.pk),
        "live_sessions": live_session_count(account_id=account.pk),
        "max_concurrent_sessions": account.plan.max_concurrent_sessions,
    }
