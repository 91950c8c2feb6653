"""What one action sends to Redis (and, with --pg-log, to PostgreSQL): commands per action.

    bin/dev bench action_commands [--actions 20] [--pg-log]

On a whole stack: one enterprise session, 10 warm-up `wait 0` actions, then `--actions` more
while `redis-cli MONITOR` records every command of the stack's Redis database. Prints the
commands per action by name and key (ids folded), and which client connection sent them, in
the order of one action, so a change in the number of round trips is visible without a timer
(a round trip on these VMs: 0.25-0.3 ms idle; `bench/round_trips.py`).

--pg-log also counts the PostgreSQL statements: it sets `log_statement = 'all'` on the server
with ALTER SYSTEM for the duration (and resets it), reading the server's log file
(`--pg-log-file`). Only on a machine of your own: it changes the shared server's settings.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import running_stack

HTTP_TIMEOUT = 60
WAIT0 = {"action": {"type": "wait", "ms": 0}}
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}|[0-9a-f]{24,}|\d{6,}")


def _superuser(sql: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(sql)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actions", type=int, default=20)
    parser.add_argument("--pg-log", action="store_true")
    parser.add_argument("--pg-log-file", default="/var/log/postgresql/postgresql-15-main.log")
    args = parser.parse_args()
    import requests

    with running_stack(name="action_commands", env_overrides={}) as stack:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {stack.make_account(plan='enterprise')}"
        base = f"{stack.base_url}/v1/computers"
        created = http.post(base, json={}, timeout=HTTP_TIMEOUT)
        created.raise_for_status()
        session_id = created.json()["id"]
        for _ in range(10):
            http.post(f"{base}/{session_id}/execute", json=WAIT0, timeout=HTTP_TIMEOUT).raise_for_status()
        time.sleep(1)
        db = stack.env["REDIS_URL"].rsplit("/", 1)[1]
        with tempfile.NamedTemporaryFile("w+", suffix=".monitor") as out:
            monitor = subprocess.Popen(["redis-cli", "-u", stack.env["REDIS_URL"], "monitor"], stdout=out)
            log_at = os.path.getsize(args.pg_log_file) if args.pg_log else 0
            if args.pg_log:
                _superuser("ALTER SYSTEM SET log_statement = 'all'")
                _superuser("SELECT pg_reload_conf()")
            try:
                time.sleep(1)
                for _ in range(args.actions):
                    answer = http.post(f"{base}/{session_id}/execute", json=WAIT0, timeout=HTTP_TIMEOUT)
                    answer.raise_for_status()
                time.sleep(0.5)
            finally:
                if args.pg_log:
                    _superuser("ALTER SYSTEM RESET log_statement")
                    _superuser("SELECT pg_reload_conf()")
                monitor.terminate()
                monitor.wait()
            out.seek(0)
            lines = [line for line in out if f"[{db} " in line]
        http.delete(f"{base}/{session_id}", timeout=HTTP_TIMEOUT)

    # A round trip: consecutive commands of one client connection that Redis read together (a
    # pipeline, MULTI/EXEC): MONITOR stamps them within microseconds of each other.
    trips, last = 0, ("", 0.0)
    for line in lines:
        stamp, _, rest = line.partition(" ")
        client = rest.split("]", 1)[0]
        if "lua" in client:
            continue  # what a script ran: part of its EVALSHA
        if client != last[0] or float(stamp) - last[1] > 0.0002:
            trips += 1
        last = (client, float(stamp))
    per_action = collections.Counter()
    for line in lines:
        found = re.search(r'\] "(\w+)"(?: "([^"]*)")?', line)
        if found:
            per_action[(found.group(1).upper(), _ID.sub("N", found.group(2) or ""))] += 1
    print(
        f"Redis per action ({args.actions} actions of `wait 0`, MONITOR): {len(lines) / args.actions:.1f}"
        f" commands in {trips / args.actions:.1f} round trips"
    )
    print("| per action | command | key |\n|---|---|---|")
    for (name, key), count in per_action.most_common():
        if count >= args.actions / 2:
            print(f"| {count / args.actions:.1f} | {name} | `{key}` |")
    if args.pg_log:
        with open(args.pg_log_file, errors="replace") as log:
            log.seek(log_at)
            mine = [line for line in log if f"@{stack.env['POSTGRES_DB']} " in line and "LOG:" in line]
        print(f"\nPostgreSQL statements per action (log_statement): {len(mine) / args.actions:.1f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
