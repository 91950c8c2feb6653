"""Tasks billing sends by name (it sits below accounts and workers), after commit."""

from __future__ import annotations

from django.db import transaction

from project.celery import app

OWNERS_NOTIFY = "workers.webhook_tasks.owners_notify"
TASK_NAMES = (OWNERS_NOTIFY,)


def owners_notify(account_id: int, *, subject: str, body: str) -> None:
    """Email the account's owners once the transaction commits (at once outside one)."""

    def send() -> None:
        app.send_task(OWNERS_NOTIFY, args=[account_id, subject, body])

    # robust: a broker outage must not fail the charge that caused the alert.
    transaction.on_commit(send, robust=True)
