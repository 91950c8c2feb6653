"""What one round trip costs on this machine: the unit the hot path is made of.

    bin/dev bench round_trips [--n 300]

Medians in µs, against the machine's own PostgreSQL (127.0.0.1:5432, its `postgres` database)
and Redis (127.0.0.1:6379; only PING): `SELECT 1`; a one-row UPDATE of a table with
`synchronous_commit` on (a commit that waits for the WAL flush, as an accept does) and off (as
the worker's claim and finish do); a Redis PING; and a hand-off from one Python thread to another
and back (queue.Queue), which is what a request pays for each hop between the event loop and a
web thread. It creates and drops the table `bench_round_trip_probe` in that database.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import threading
import time
from collections.abc import Callable

import psycopg
import redis


def _median_us(call: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    return round(statistics.median(samples), 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300)
    n = parser.parse_args().n
    rows: list[tuple[str, float]] = []
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        # A plain table: a temporary one writes no WAL, so its commit would not wait for a flush.
        conn.execute("DROP TABLE IF EXISTS bench_round_trip_probe")
        conn.execute("CREATE TABLE bench_round_trip_probe (i int)")
        conn.execute("INSERT INTO bench_round_trip_probe VALUES (1)")
        rows.append(("PostgreSQL `SELECT 1`", _median_us(lambda: conn.execute("SELECT 1"), n)))
        update = "UPDATE bench_round_trip_probe SET i = i + 1"
        rows.append(("one-row UPDATE, synchronous_commit on", _median_us(lambda: conn.execute(update), n)))
        conn.execute("SET synchronous_commit = off")
        rows.append(("one-row UPDATE, synchronous_commit off", _median_us(lambda: conn.execute(update), n)))
        conn.execute("DROP TABLE bench_round_trip_probe")
    client = redis.Redis(host="127.0.0.1", port=6379)
    rows.append(("Redis PING", _median_us(client.ping, n)))
    there: queue.Queue[int] = queue.Queue()
    back: queue.Queue[int] = queue.Queue()

    def echo() -> None:
        while (item := there.get()) >= 0:
            back.put(item)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    rows.append(("thread hand-off and back", _median_us(lambda: (there.put(1), back.get()), n)))
    there.put(-1)
    print("| round trip | median µs |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
