"""Delivery tasks sent by name (this app sits below workers), after the current transaction
commits, so a worker never looks for a delivery that is not there yet."""

from __future__ import annotations

from django.db import transaction

from project.celery import app

WEBHOOK_DELIVER = "workers.webhook_tasks.webhook_deliver"
TASK_NAMES = (WEBHOOK_DELIVER,)


def deliveries_send(delivery_ids: list[int]) -> None:
    """Queue one task per delivery once the transaction commits (at once outside one). A send
    that never happens (a crash right after commit) is picked up by the Beat sweep."""
    if not delivery_ids:
        return

    def send() -> None:
        for delivery_id in delivery_ids:
            app.send_task(WEBHOOK_DELIVER, args=[delivery_id])

    # robust: a broker outage must not fail the change that caused the events (the sweep sends them).
    transaction.on_commit(send, robust=True)
