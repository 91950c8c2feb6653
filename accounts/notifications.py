"""Emails to an account's owners (low balance, a webhook endpoint disabled): sent by the webhooks
worker (workers/webhook_tasks.py owners_notify), through Django's mail backend."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail

from accounts.selectors import owner_emails


def owners_email(*, account_id: int, subject: str, body: str) -> int:
    """Send one email to the account's active owners; returns how many addresses it went to
    (0: an account without owners, or none with an address)."""
    recipients = owner_emails(account_id=account_id)
    if not recipients:
        return 0
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    return len(recipients)
