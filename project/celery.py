"""The Celery app: workers own the browsers, Beat sweeps expiries and reconciles browsers."""

from __future__ import annotations

import os

from celery import Celery
from django.conf import settings

from project.broker import patch_kombu_redis_transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

patch_kombu_redis_transport()
app = Celery("browserfleet")
app.config_from_object("project.celery_config:config", namespace="CELERY")
app.autodiscover_tasks(["workers"])

from project.heartbeat import WorkerHeartbeat  # noqa: E402  (needs the app's settings module set)

app.steps["worker"].add(WorkerHeartbeat)


# Beat's schedule: (task, its period, what it does). A period is a setting's name or seconds.
PERIODIC_TASKS: tuple[tuple[str, str | int, str], ...] = (
    ("workers.tasks.sessions_sweep", "SESSION_SWEEP_INTERVAL_SECONDS", "sweep expired sessions"),
    ("workers.tasks.actions_reconcile", "SESSION_SWEEP_INTERVAL_SECONDS",
     "settle actions of lost workers, redeliver undelivered ones"),
    ("workers.tasks.browsers_reconcile", "RECONCILE_INTERVAL_SECONDS", "reconcile browsers"),
    ("workers.tasks.sessions_bill_time", "BILLING_INTERVAL_SECONDS", "bill session time"),
    ("workers.tasks.screenshots_purge", 600, "purge expired screenshots"),
    ("workers.tasks.saved_states_purge", 3600,
     "purge saved browser states unused past their plan's retention"),
    ("workers.tasks.page_logs_purge", 600, "purge page logs of sessions ended past their retention"),
    ("workers.tasks.recordings_finalize", "SESSION_SWEEP_INTERVAL_SECONDS",
     "settle recordings of ended sessions (ready or failed)"),
    ("workers.tasks.recordings_purge", 600, "purge recordings past their retention"),
    ("workers.job_tasks.jobs_tick", "JOB_TICK_INTERVAL_SECONDS",
     "batch jobs: lost pages, idle jobs, waiting jobs"),
    ("workers.job_tasks.jobs_purge", 600, "batch jobs: purge expired results"),
    ("workers.webhook_tasks.webhooks_sweep", "WEBHOOK_SWEEP_INTERVAL_SECONDS",
     "webhooks: send due deliveries"),
    ("workers.webhook_tasks.sessions_expiring", "WEBHOOK_SWEEP_INTERVAL_SECONDS",
     "webhooks: session.expiring a minute before a session ends"),
    ("workers.webhook_tasks.webhooks_purge", 3600, "webhooks: purge the delivery log"),
)  # fmt: skip


@app.on_after_finalize.connect
def _schedule_periodic_tasks(sender: Celery, **_: object) -> None:
    for task, period_of, name in PERIODIC_TASKS:
        period = int(getattr(settings, period_of)) if isinstance(period_of, str) else period_of
        # A periodic run that waited longer than its own interval is stale: the next one is due.
        sender.add_periodic_task(
            float(period), sender.signature(task, options={"expires": period}), name=name
        )
