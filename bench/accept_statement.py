"""The accept statement alone: its cost before and after a change, interleaved in one process.

    python bench/accept_statement.py BEFORE.sql [--iterations 2000]

BEFORE.sql is a previous version's `sessions.action_queue._ACCEPT` (render it in that version's
checkout: `python -c "import django; django.setup(); from sessions.action_queue import _ACCEPT;
print(_ACCEPT)"`). On the development database (migrated to this checkout; its added columns are
nullable, so the older statement still runs), one enterprise account, one running session; each
iteration runs, in rotating order, the older statement, this version's for a key without a spend
cap, and this version's for a key with one (never reached), each its own transaction as in the
accept. Reports the median and p90 of each in ms: what the change costs the accept itself,
without the noise of the rest of the round trip (bench/action_roundtrip.py measures that).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import ApiKey  # noqa: E402
from accounts.services import account_create  # noqa: E402
from billing.ledger import spend_period  # noqa: E402
from billing.spend_caps import key_spend_cap_set  # noqa: E402
from sessions.action_queue import _ACCEPT, _ACCEPT_CAPPED  # noqa: E402
from sessions.models import Action, BrowserSession, new_action_id  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path)
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    before = args.before.read_text()
    account, _ = account_create(name="bench-accept", plan_name="enterprise", credits=10**12)
    key = ApiKey.objects.get(account=account)
    capped_key = ApiKey.objects.create(
        account=account, name="capped", prefix="bf_bench", hashed_key=os.urandom(32).hex()
    )
    key_spend_cap_set(account_id=account.pk, api_key_id=capped_key.pk, cap=10**12)
    now = timezone.now()
    session = BrowserSession.objects.create(
        account=account,
        status="running",
        created_at=now,
        last_activity_at=now,
        expires_at=now + timezone.timedelta(hours=20),
        max_lifetime_seconds=72000,
        inactivity_timeout_seconds=3600,
        idle_timeout_enabled=False,
    )
    variants = {
        "before": (before, None, False),
        "after_no_cap": (_ACCEPT, key.pk, False),
        "after_capped": (_ACCEPT_CAPPED, capped_key.pk, True),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    with connection.cursor() as cursor:
        for i in range(args.iterations):
            for name in names[i % 3 :] + names[: i % 3]:
                sql, api_key_id, capped = variants[name]
                public_id = new_action_id()
                params = {
                    "items": ["wait"],
                    "now": timezone.now(),
                    "session_id": session.pk,
                    "account_id": account.pk,
                    "public_id": public_id,
                    "charge_key": f"action:{public_id}",
                    "type": "wait",
                    "params": "{}",
                    "request_id": "",
                    "is_batch": False,
                    "api_key_id": api_key_id,
                    **({"period": spend_period()} if capped else {}),
                }
                started = time.perf_counter()
                cursor.execute(sql, params)
                row = cursor.fetchone()
                times[name].append((time.perf_counter() - started) * 1000)
                assert row is not None, name
    result = {
        name: {"median_ms": round(statistics.median(t), 3), "p90_ms": round(sorted(t)[int(len(t) * 0.9)], 3)}
        for name, t in times.items()
    }
    result["iterations"] = args.iterations
    result["loadavg"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))
    Action.objects.filter(session=session).update(status="succeeded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
