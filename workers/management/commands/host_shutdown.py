"""End this host's service for good: its live sessions end (`shutdown`) and no browser is left.

`bin/dev serve` runs it when stopped (Ctrl-C, SIGTERM): once after the web stops taking
requests, and once more with --orphans after the workers have exited. A worker restart under
`bin/dev supervise` does not run it: live sessions survive that and are adopted.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from workers.services import host_shutdown


class Command(BaseCommand):
    help = "End this host's live sessions (ended_reason shutdown) and stop every browser it runs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.WORKER_HOST, help="the worker host (WORKER_HOST)")
        parser.add_argument(
            "--orphans",
            action="store_true",
            help="also kill every browser left under BROWSER_PROFILE_ROOT (after the workers exited)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = host_shutdown(host=options["host"], orphans=options["orphans"])
        self.stdout.write(
            f"{options['host']}: {result['ended']} sessions ended (shutdown), {result['stopped']} browsers "
            f"stopped, {result['killed']} left-over browsers killed"
        )
