"""The queue topology, declared once: the Celery worker pools and the queues each consumes.

`bin/dev` (as a script: `python project/queues.py POOL [HOST]` prints the `-Q` value) and the
test suite's workers (tests/support/processes.py, tests/conftest.py) read it. docker-compose.yml
cannot, so tests/project/test_queues.py checks that it agrees, that `bin/dev` starts each pool
on these queues, and that every task route (project/settings.py) and host queue
(sessions/fleet.py) lands on a queue some pool consumes. Standard library only: `bin/dev` runs
it as a script, before anything else is imported.

A worker host runs two pools, so that browser starts never hold up actions and the other way
round; batch jobs and webhook deliveries each have a pool of their own (docs/operations.md, "Sizing
the workers"). `{host}` in a queue name stands for the host's WORKER_HOST.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

# Shared queues: any worker of the pool may take their tasks.
LIFECYCLE = "lifecycle"  # browser starts and stops, pool refills (the default queue)
ACTIONS = "actions"  # actions of sessions whose host is not known
JOBS = "jobs"  # batch job browsers
WEBHOOKS = "webhooks"  # webhook deliveries
# Beat's periodic bookkeeping (sweep, reconciles, time billing, the jobs tick): taken by the
# actions pool's threads, so that it never waits behind a browser start in the lifecycle pool.
MAINTENANCE = "maintenance"

# One host's own queues: what only the worker holding its browsers can do.
HOST_LIFECYCLE = "host.{host}"  # starts, stops, warm-pool refills and reconcile on that host
HOST_ACTIONS = "actions.{host}"  # actions of that host's sessions, adopting a warm browser


@dataclass(frozen=True)
class Pool:
    name: str
    queues: tuple[str, ...]
    # Celery's --pool: prefork for CPU-bound browser starts and job browsers, threads for actions
    # (WebDriver HTTP, waiting on the browser).
    pool: str
    # Whether it runs on every worker host (its queues name the host) or once anywhere.
    per_host: bool

    def queue_names(self, host: str = "") -> list[str]:
        if self.per_host and not host:
            raise ValueError(f"the {self.name} pool consumes a host's own queues: give WORKER_HOST")
        return [queue.format(host=host) for queue in self.queues]


POOLS: dict[str, Pool] = {
    pool.name: pool
    for pool in (
        Pool("lifecycle", (LIFECYCLE, HOST_LIFECYCLE), pool="prefork", per_host=True),
        Pool("actions", (ACTIONS, HOST_ACTIONS, MAINTENANCE), pool="threads", per_host=True),
        Pool("jobs", (JOBS,), pool="prefork", per_host=False),
        # Deliveries have their own pool: a slow receiver never holds a job browser's process.
        Pool("webhooks", (WEBHOOKS,), pool="prefork", per_host=False),
    )
}


def host_queue(host: str) -> str:
    """The queue of one host's lifecycle worker."""
    return HOST_LIFECYCLE.format(host=host)


def host_actions_queue(host: str) -> str:
    """The queue of one host's actions worker."""
    return HOST_ACTIONS.format(host=host)


# An accepted action reaches a worker as a drain request: its session's id pushed onto the Redis
# list of the queue its actions go to, which the actions pool's drain threads pop
# (workers/drains.py). Not a Celery message: Celery's consumer, its thread hand-off and its ack
# bookkeeping were a millisecond of every action's path (docs/benchmarks.md, "Wave 4 session 8").
DRAIN_LIST = "bf:drain:{queue}"


def drain_list(queue: str) -> str:
    """The Redis list of drain requests for the actions of `queue` (ACTIONS or a HOST_ACTIONS)."""
    return DRAIN_LIST.format(queue=queue)


def drain_queues(consumed: list[str]) -> list[str]:
    """Of a worker's consumed queues, those whose actions its drain threads take: the host's own
    first (only this host can drive its browsers), then the shared one."""
    own = [q for q in consumed if q.startswith(HOST_ACTIONS.format(host=""))]
    return own + [q for q in consumed if q == ACTIONS]


def worker_queues(pool: str, host: str = "") -> str:
    """The `-Q` value of a pool's `celery worker`."""
    return ",".join(POOLS[pool].queue_names(host))


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[1] not in POOLS:
        print(f"usage: {argv[0]} {'|'.join(POOLS)} [WORKER_HOST]", file=sys.stderr)
        return 2
    try:
        print(worker_queues(argv[1], argv[2] if len(argv) == 3 else ""))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
