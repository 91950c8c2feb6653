"""The Celery app: workers own the browsers, Beat sweeps expiries and reconciles browsers."""

from __future__ import annotations

import os

from celery import Celery
from django.conf import settings

from project.broker import patch_kombu_redis_transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

patch_kombu_redis_transport()
app = Celery("browserfleet")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])

from project.heartbeat import WorkerHeartbeat  # noqa: E402  (needs the app's settings module set)

app.steps["worker"].add(WorkerHeartbeat)


@app.on_after_finalize.connect
def _schedule_periodic_tasks(sender: Celery, **_: object) -> None:
    sweep = settings.SESSION_SWEEP_INTERVAL_SECONDS
    reconcile = settings.RECONCILE_INTERVAL_SECONDS
    # A periodic run that waited longer than its own interval is stale: the next one is due.
    sender.add_periodic_task(
        float(sweep),
        sender.signature("workers.tasks.sessions_sweep", options={"expires": sweep}),
        name="sweep expired sessions",
    )
    sender.add_periodic_task(
        float(sweep),
        sender.signature("workers.tasks.actions_reconcile", options={"expires": sweep}),
        name="settle actions of lost workers, redeliver undelivered ones",
    )
    sender.add_periodic_task(
        float(reconcile),
        sender.signature("workers.tasks.browsers_reconcile", options={"expires": reconcile}),
        name="reconcile browsers",
    )
    billing = settings.BILLING_INTERVAL_SECONDS
    sender.add_periodic_task(
        float(billing),
        sender.signature("workers.tasks.sessions_bill_time", options={"expires": billing}),
        name="bill session time",
    )
    sender.add_periodic_task(
        600.0,
        sender.signature("workers.tasks.screenshots_purge", options={"expires": 600}),
        name="purge expired screenshots",
    )
    sender.add_periodic_task(
        3600.0,
        sender.signature("workers.tasks.saved_states_purge", options={"expires": 3600}),
        name="purge saved browser states unused past their plan's retention",
    )
    sender.add_periodic_task(
        600.0,
        sender.signature("workers.tasks.page_logs_purge", options={"expires": 600}),
        name="purge page logs of sessions ended past their retention",
    )
    sender.add_periodic_task(
        float(sweep),
        sender.signature("workers.tasks.recordings_finalize", options={"expires": sweep}),
        name="settle recordings of ended sessions (ready or failed)",
    )
    sender.add_periodic_task(
        600.0,
        sender.signature("workers.tasks.recordings_purge", options={"expires": 600}),
        name="purge recordings past their retention",
    )
    tick = settings.JOB_TICK_INTERVAL_SECONDS
    sender.add_periodic_task(
        float(tick),
        sender.signature("workers.job_tasks.jobs_tick", options={"expires": tick}),
        name="batch jobs: lost pages, idle jobs, waiting jobs",
    )
    sender.add_periodic_task(
        600.0,
        sender.signature("workers.job_tasks.jobs_purge", options={"expires": 600}),
        name="batch jobs: purge expired results",
    )
    hooks = settings.WEBHOOK_SWEEP_INTERVAL_SECONDS
    sender.add_periodic_task(
        float(hooks),
        sender.signature("workers.webhook_tasks.webhooks_sweep", options={"expires": hooks}),
        name="webhooks: send due deliveries",
    )
    sender.add_periodic_task(
        float(hooks),
        sender.signature("workers.webhook_tasks.sessions_expiring", options={"expires": hooks}),
        name="webhooks: session.expiring a minute before a session ends",
    )
    sender.add_periodic_task(
        3600.0,
        sender.signature("workers.webhook_tasks.webhooks_purge", options={"expires": 3600}),
        name="webhooks: purge the delivery log",
    )
