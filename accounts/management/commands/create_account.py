from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Plan
from accounts.services import account_create


class Command(BaseCommand):
    help = "Create an account with an API key; the raw key is printed alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--plan", default="free")
        parser.add_argument("--credits", type=int, default=0)

    def handle(self, *args: Any, name: str, plan: str, credits: int, **options: Any) -> None:
        if credits < 0:
            raise CommandError("--credits must not be negative")
        if not Plan.objects.filter(name=plan).exists():
            names = ", ".join(Plan.objects.values_list("name", flat=True).order_by("pk"))
            raise CommandError(f"unknown plan {plan!r}; plans: {names}")
        account, raw_key = account_create(name=name, plan_name=plan, credits=credits)
        self.stdout.write(
            f"Created account {account.pk} ({account.name}) on plan {plan} with {credits} credits."
        )
        self.stdout.write("API key (shown once, store it now):")
        self.stdout.write(raw_key)
