"""Real processes for tests: a Celery worker and Celery Beat, and a look at browser processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def start_celery(
    args: list[str], *, env: dict[str, str], log: Path, ready_marker: str
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "project", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery {args[0]} exited:\n{log.read_text()[-4000:]}")
        if ready_marker in log.read_text(errors="replace"):
            return process
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"celery {args[0]} did not become ready:\n{log.read_text()[-4000:]}")


def start_egress(*, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The egress filter (python -m workers.egress), ready when it answers its health check."""
    import http.client

    from workers.egress import HEALTH_BODY, HEALTH_HOST

    port = int(env["BROWSER_EGRESS_PORT"])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.egress", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the egress filter exited:\n{log.read_text()[-4000:]}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", f"http://{HEALTH_HOST}/", headers={"Host": HEALTH_HOST})
            if connection.getresponse().read() == HEALTH_BODY:
                return process
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"the egress filter did not become ready:\n{log.read_text()[-4000:]}")


def start_worker_host(
    *, host: str, env: dict[str, str], logs: Path, lifecycle_concurrency: int = 2, action_threads: int = 8
) -> list[subprocess.Popen[bytes]]:
    """One worker host, as `bin/dev worker` runs it: a prefork lifecycle worker (shared queue and
    `host.<host>`) and a threads actions worker (`actions`, `actions.<host>`, `maintenance`)."""
    env = {**env, "WORKER_HOST": host}
    common = ["-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    lifecycle = start_celery(
        ["worker", "-Q", f"lifecycle,host.{host}", "--pool", "prefork", "-c", str(lifecycle_concurrency),
         "-n", f"lifecycle-{host}@%h", *common],
        env=env,
        log=logs / f"lifecycle-{host}.log",
        ready_marker="ready.",
    )  # fmt: skip
    try:
        actions = start_celery(
            ["worker", "-Q", f"actions,actions.{host},maintenance", "--pool", "threads",
             "-c", str(action_threads), "-n", f"actions-{host}@%h", *common],
            env=env,
            log=logs / f"actions-{host}.log",
            ready_marker="ready.",
        )  # fmt: skip
    except BaseException:
        stop_process(lifecycle)
        raise
    return [lifecycle, actions]


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _is_zombie(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def browser_processes(marker: str) -> list[tuple[int, str]]:
    """Running (not zombie) processes whose command line contains `marker` (a profile path)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if marker in cmdline and not _is_zombie(entry.name):
            found.append((int(entry.name), cmdline.replace("\0", " ")[:200]))
    return found


def wait_until(predicate, *, timeout: float, interval: float = 0.1, message: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
