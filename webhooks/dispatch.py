"""Delivery tasks sent by name (this app sits below workers), after the current transaction
commits, so a worker never looks for a delivery that is not there yet."""

from __future__ import annotations

from django.db import transaction

from project.celery import app

WEBHOOK_DELIVER = "workers.webhook_tasks.webhook_deliver"
# An email to the account's owners (low balance, an endpoint disabled): owners are console people
# (accounts), above this app and billing, so their senders (billing.alerts, services here) send it
# by name; the webhooks worker sends the email.
OWNERS_NOTIFY = "workers.webhook_tasks.owners_notify"
TASK_NAMES = (WEBHOOK_DELIVER, OWNERS_NOTIFY)


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


def owners_notify(account_id: int, *, subject: str, body: str) -> None:
    """Email the account's owners once the transaction commits (at once outside one)."""

    def send() -> None:
        app.send_task(OWNERS_NOTIFY, args=[account_id, subject, body])

    # robust: a broker outage must not fail the change that caused the email.
    transaction.on_commit(send, robust=True)
