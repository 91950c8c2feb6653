from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from billing.selectors import balances_mismatched


class Command(BaseCommand):
    help = "Check that every account's balance equals the sum of its ledger; exit 1 if any does not."

    def handle(self, *args: Any, **options: Any) -> None:
        wrong = balances_mismatched()
        for row in wrong:
            self.stdout.write(
                f"account {row['account_id']} ({row['name']}): "
                f"balance {row['balance']} != ledger sum {row['ledger_sum']}"
            )
        if wrong:
            raise CommandError(f"{len(wrong)} accounts do not match their ledger")
        self.stdout.write("All balances equal their ledger sums.")
