"""Many sessions of one account at once: actions, creates, stops and minute billing together.

Every path that touches an account's balance, its sessions and its actions takes its row locks
in one order (docs/decisions.md, "Lock order"); this drives them all at once through the API and
checks that PostgreSQL saw no deadlock and no request answered 5xx.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.db import connection
from django.db.models import F

from sessions.models import BrowserSession
from sessions.time_billing import sessions_bill_time

SESSIONS = 6
SECONDS = 8


def _deadlocks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def test_one_account_acting_creating_stopping_and_billing_at_once_never_deadlocks(make_client):
    client = make_client(plan="enterprise", credits=10**7)
    with ThreadPoolExecutor(SESSIONS) as pool:
        created = list(pool.map(lambda _: client.post("/v1/computers", {}), range(SESSIONS)))
    assert all(r.status_code == 201 for r in created), [r.text for r in created]
    session_ids = [r.json()["id"] for r in created]

    statuses: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()
    before = _deadlocks()

    def record(what: str, response) -> None:  # type: ignore[no-untyped-def]
        statuses[f"{what} {response.status_code}"] += 1
        if response.status_code >= 500:
            failures.append(f"{what}: {response.status_code} {response.text[:300]}")

    def act(session_id: str) -> None:
        while not stop.is_set():
            response = client.post(
                f"/v1/computers/{session_id}/execute", {"action": {"type": "wait", "ms": 0}}
            )
            record("action", response)

    def churn() -> None:
        while not stop.is_set():
            response = client.post("/v1/computers", {})
            record("create", response)
            if response.status_code == 201:
                record("delete", client.delete(f"/v1/computers/{response.json()['id']}"))

    def bill() -> None:
        while not stop.is_set():
            # Sessions that look a minute older each round, so every round has minutes to charge.
            BrowserSession.objects.filter(pk__in=session_ids).update(
                created_at=F("created_at") - timedelta(minutes=1)
            )
            sessions_bill_time()
            statuses["billing runs"] += 1
            time.sleep(0.2)  # pacing: a billing run five times a second, against the traffic
        connection.close()

    threads = [threading.Thread(target=act, args=(sid,)) for sid in session_ids]
    threads += [threading.Thread(target=churn) for _ in range(2)]
    threads.append(threading.Thread(target=bill))
    for thread in threads:
        thread.start()
    time.sleep(SECONDS)  # the length of the load, not a wait for something
    stop.set()
    for thread in threads:
        thread.join(timeout=90)

    assert failures == [], (failures[:5], statuses)
    assert _deadlocks() == before, statuses
    assert statuses["action 200"] > SESSIONS * 5, statuses
    assert statuses["create 201"] >= 2, statuses
    assert statuses["billing runs"] >= 3, statuses
