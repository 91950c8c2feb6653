"""`manage.py readyz [--worker NAME]`: the /readyz checks from a shell, for health checks of
processes that serve no HTTP (a Celery worker checks its own heartbeat with --worker)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops.probes import readiness_check


class Command(BaseCommand):
    help = "Exit 0 when PostgreSQL, Redis and a worker heartbeat (or the named worker's) are fine."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--worker", help="require this worker's own heartbeat, e.g. celery@$HOSTNAME")

    def handle(self, *args: Any, worker: str | None = None, **options: Any) -> None:
        result = readiness_check()
        if (
            worker
            and result["checks"]["workers"]["ok"]
            and worker not in result["checks"]["workers"]["online"]
        ):
            bound = settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS
            result["checks"]["workers"] = {
                "ok": False,
                "error": f"no heartbeat of {worker} in the last {bound} s",
            }
            result["failed"].append("workers")
        self.stdout.write(json.dumps(result))
        if result["failed"]:
            raise CommandError("not ready: " + ", ".join(result["failed"]))
