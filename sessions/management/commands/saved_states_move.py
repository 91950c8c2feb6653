from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from sessions.state_store import StateStoreError, saved_states_move, state_store_sweep


class Command(BaseCommand):
    help = (
        "Move saved states' encrypted bytes into the store SAVED_STATE_STORE names (after switching "
        "it; docs/saved-state.md). Until then each state keeps restoring from where it is."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sweep",
            action="store_true",
            help="also delete objects of the s3 store that no state names (older than an hour)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            moved = saved_states_move()
            self.stdout.write(f"{moved} saved states moved into the {self._target()} store.")
            if options["sweep"]:
                swept = state_store_sweep(older_than=timezone.now() - timedelta(hours=1))
                self.stdout.write(f"{swept} unnamed objects deleted from the s3 store.")
        except StateStoreError as exc:
            raise CommandError(str(exc)) from exc

    def _target(self) -> str:
        from django.conf import settings

        return str(settings.SAVED_STATE_STORE)
