"""Bytes through the operator's proxy pool: charged per started MB (`proxy_mb`), exactly once.

The egress filter counts what each metered tunnel carries, both ways, and reports the session's
running total (workers/egress/metering.py); the worker hands that total here when the browser
has stopped. The session records what was charged (`proxy_bytes`, `proxy_billed_mb`) and each
charge is keyed by the MB total it brings the session to, so a stop task that runs twice, or a
total handed over again, charges nothing more. A tenant's own proxies are never charged for bytes.
"""

from __future__ import annotations

import logging

from django.db import transaction

from billing.services import session_proxy_charge
from project.db import retry_on_conflict
from project.exceptions import InsufficientCredits
from sessions.models import BrowserSession

logger = logging.getLogger(__name__)

MB = 1_000_000


def mb_started(total_bytes: int) -> int:
    return -(-total_bytes // MB)


@retry_on_conflict
def session_proxy_bill(*, session_id: str, total_bytes: int) -> bool:
    """Charge the session's pool bytes up to `total_bytes` that are not charged yet.

    False when the balance could not cover them (nothing charged, logged). Lock order: the
    session row, then the balance (inside the charge), as everywhere.
    """
    with transaction.atomic():
        session = BrowserSession.objects.select_for_update(no_key=True).get(pk=session_id)
        if total_bytes <= session.proxy_bytes:
            return True
        due = mb_started(total_bytes)
        try:
            session_proxy_charge(
                account_id=session.account_id,
                session_id=session.pk,
                upto_mb=due,
                new_mb=due - session.proxy_billed_mb,
            )
        except InsufficientCredits:
            logger.warning("session %s: the balance cannot cover its proxy bytes", session_id)
            return False
        BrowserSession.objects.filter(pk=session.pk).update(
            proxy_bytes=total_bytes, proxy_billed_mb=max(due, session.proxy_billed_mb)
        )
    return True
