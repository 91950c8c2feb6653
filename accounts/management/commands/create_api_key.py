from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Account
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Issue a new API key for an existing account; the raw key is printed alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help="account name or id")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args: Any, account: str, name: str, **options: Any) -> None:
        accounts = (
            Account.objects.filter(pk=int(account))
            if account.isdigit()
            else Account.objects.filter(name=account)
        )
        if accounts.count() != 1:
            raise CommandError(f"{accounts.count()} accounts match {account!r}; give the account id")
        target = accounts.get()
        _, raw_key = api_key_create(account=target, name=name)
        self.stdout.write(f"New API key for account {target.pk} ({target.name}), shown once:")
        self.stdout.write(raw_key)
