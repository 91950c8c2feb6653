"""The queue topology is declared once (project/queues.py): what starts workers agrees with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from django.conf import settings

from project.queues import POOLS, host_actions_queue, host_queue, worker_queues
from tests.support.processes import REPO

# docker-compose.yml's worker services and the pool each runs.
COMPOSE_POOLS = {
    "worker-lifecycle": "lifecycle",
    "worker-actions": "actions",
    "jobs-worker": "jobs",
    "webhooks-worker": "webhooks",
}


def _flag(args: list[str], flag: str, default: str | None = None) -> str | None:
    return args[args.index(flag) + 1] if flag in args else default


def test_compose_runs_each_pool_on_its_declared_queues() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    workers = {
        name: service
        for name, service in compose["services"].items()
        if service.get("command", [])[:4] == ["celery", "-A", "project", "worker"]
    }
    assert set(workers) == set(COMPOSE_POOLS), "a Celery worker service that runs no declared pool"
    for name, pool in COMPOSE_POOLS.items():
        command = workers[name]["command"]
        host = workers[name].get("environment", {}).get("WORKER_HOST", "")
        assert _flag(command, "-Q") == worker_queues(pool, host), name
        assert _flag(command, "--pool", "prefork") == POOLS[pool].pool, name


def _fake_venv(tmp_path: Path) -> Path:
    """A venv whose `celery` prints its arguments instead of starting a worker."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (bin_dir / "celery").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    return bin_dir.parent


def _bin_dev_worker_args(tmp_path: Path, *command: str) -> list[str]:
    env = {**os.environ, "VENV": str(_fake_venv(tmp_path)), "WORKER_HOST": "host-x"}
    done = subprocess.run(
        [str(REPO / "bin" / "dev"), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_bin_dev_runs_each_pool_on_its_declared_queues(tmp_path: Path) -> None:
    for command, pool in ((("worker", "lifecycle"), "lifecycle"), (("worker", "actions"), "actions")):
        args = _bin_dev_worker_args(tmp_path, *command)
        assert _flag(args, "-Q") == worker_queues(pool, "host-x"), command
        assert _flag(args, "--pool") == POOLS[pool].pool, command
    for command_name, pool in (("jobs-worker", "jobs"), ("webhooks-worker", "webhooks")):
        args = _bin_dev_worker_args(tmp_path, command_name)
        assert _flag(args, "-Q") == worker_queues(pool), args
        assert _flag(args, "--pool", "prefork") == POOLS[pool].pool


def test_every_routed_task_lands_on_a_queue_some_pool_consumes() -> None:
    shared = {queue for pool in POOLS.values() for queue in pool.queues if "{host}" not in queue}
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} <= shared
    # What dispatch sends to one host goes to the queues that host's pools consume.
    from sessions import dispatch

    assert dispatch.host_queue("h") == host_queue("h")
    assert host_queue("h") in POOLS["lifecycle"].queue_names("h")
    assert dispatch.host_actions_queue("h") == host_actions_queue("h")
    assert host_actions_queue("h") in POOLS["actions"].queue_names("h")
