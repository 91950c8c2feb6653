"""Benchmark harness: the real service on this machine, isolated from development and tests.

    with running_stack(name="session_lifecycle") as stack:
        key = stack.make_account(plan="enterprise")
        requests.post(f"{stack.base_url}/v1/computers", headers={"Authorization": f"Bearer {key}"}, ...)
        rows = stack.db_query("SELECT count(*) FROM browser_sessions_browsersession")

What `running_stack` brings up, and takes down again on exit (also on errors, Ctrl-C, SIGTERM):

- a PostgreSQL database `browserfleet_bench_<name>` on 127.0.0.1 (user postgres, trust auth),
  dropped first if present, migrated with `manage.py migrate`, dropped at the end;
- Redis database 13 (tests use 15, development 0), flushed before and after; a lock file keeps
  two benchmarks from sharing it at once;
- a temporary BROWSER_PROFILE_ROOT, so reconcile only ever sees this stack's browsers;
- `bin/dev web` (gunicorn with uvicorn ASGI workers, 2 processes x 16 API threads, on a free
  127.0.0.1 port),
  `bin/dev worker` (its two Celery workers: lifecycle prefork with `worker_concurrency`
  processes, default 4; actions with `action_threads` threads, default 32) and `bin/dev beat`:
  the commands `bin/dev serve` runs, each in its own process group, with
  BROWSERFLEET_ENV=development.

At the end, live sessions are ended through the service (as `admin`) and their browsers given
time to go; then the processes are stopped and any chromium or chromedriver still carrying the
profile root in its command line is killed and reported (`stack.leaked`).

What every benchmark records with its figures: `report_header(NAME)` (command, date, machine,
commit, load average) and `report_write(results, output, markdown)`; `percentile` and `summary`.

Run scripts from the repository root with the virtualenv's Python: `bin/dev bench NAME`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as `python bench/NAME.py`: the project's own helpers

from tests.support.processes import browser_processes as processes_mentioning  # noqa: E402

PYTHON = sys.executable
# Several people benchmarking on one machine: each sets BENCH_REDIS_DB and BENCH_DB_PREFIX of
# their own, so that their stacks share neither a Redis database nor a PostgreSQL one.
DEFAULT_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "13"))
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "browserfleet_bench")
# BENCH_KEEP_LOGS=1 keeps a stack's logs (web, workers, Beat, filter) after a run that passed;
# a failed run always keeps them.
READY_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 20
END_SESSIONS_TIMEOUT_SECONDS = 45

# Same shape as `bin/dev web|worker|beat`.
WEB_WORKERS = 2
WEB_THREADS = 16
WORKER_CONCURRENCY = 4
ACTION_THREADS = 32


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class Stack:
    """What a running stack offers to a benchmark."""

    name: str
    base_url: str
    env: dict[str, str]
    database: str
    workdir: Path
    profile_root: Path
    _db: psycopg.Connection[Any] = field(repr=False)
    accounts_made: int = 0
    leaked: list[tuple[int, str]] = field(default_factory=list)
    # web, worker and beat as started (with `supervised`, the supervisor of each)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def make_account(self, plan: str = "enterprise", credits: int = 10**9, *, name: str | None = None) -> str:
        """Create an account with `manage.py create_account`; return its raw API key."""
        self.accounts_made += 1
        name = name or f"bench-{self.name}-{self.accounts_made}"
        out = run_checked(
            [PYTHON, "manage.py", "create_account", name, "--plan", plan, "--credits", str(credits)],
            env=self.env,
            timeout=60,
        )
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        if not lines:
            raise RuntimeError("create_account printed nothing")
        return lines[-1]

    def db_query(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement on the bench database (autocommit); return its rows (or [])."""
        for attempt in (1, 2):
            if self._db.closed:
                self._db = _connect(self.env, self.database)
            try:
                with self._db.cursor() as cursor:
                    cursor.execute(query, params)  # type: ignore[arg-type]
                    return list(cursor.fetchall()) if cursor.description else []
            except psycopg.OperationalError:
                # A fault test restarted the server under this connection: connect again, once.
                self._db.close()
                if attempt == 2:
                    raise
        return []

    def manage(self, *args: str, timeout: float = 120) -> str:
        """Run `manage.py ARGS` against the bench stack; return its stdout."""
        return run_checked([PYTHON, "manage.py", *args], env=self.env, timeout=timeout)

    def log_path(self, process: str) -> Path:
        """Log of `web`, `worker` or `beat` (kept only if the run fails)."""
        return self.workdir / f"{process}.log"


def run_checked(cmd: list[str], *, env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        what = " ".join(cmd[1:3])
        raise RuntimeError(
            f"{what} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _admin_connection(env: dict[str, str]) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]),
        user=env["POSTGRES_USER"],
        password=env.get("POSTGRES_PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
        connect_timeout=10,
    )


def _connect(env: dict[str, str], database: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]),
        user=env["POSTGRES_USER"],
        dbname=database,
        autocommit=True,
        connect_timeout=10,
    )


def _drop_database(env: dict[str, str], database: str) -> None:
    with _admin_connection(env) as conn:
        # FORCE ends what is still connected (PostgreSQL 13+).
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def _create_database(env: dict[str, str], database: str) -> None:
    _drop_database(env, database)
    with _admin_connection(env) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def _start(cmd: list[str], *, env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    with log_file.open("wb") as out:
        return subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
        )


def _stop(process: subprocess.Popen[bytes], label: str) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        log(f"{label} did not stop within {STOP_TIMEOUT_SECONDS}s; killing its process group")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    # Anything left in the group (a gunicorn or celery child) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no log)"


def _wait_ready(checks: dict[str, tuple[subprocess.Popen[bytes], Path, Callable[[], bool]]]) -> None:
    pending = dict(checks)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while pending:
        for label, (process, log_file, ready) in list(pending.items()):
            if process.poll() is not None:
                raise RuntimeError(f"{label} exited with {process.returncode}:\n{_tail(log_file)}")
            if ready():
                del pending[label]
        if not pending:
            return
        if time.monotonic() > deadline:
            details = "\n".join(
                f"--- {label}:\n{_tail(log_file)}" for label, (_, log_file, _) in pending.items()
            )
            raise RuntimeError(f"not ready after {READY_TIMEOUT_SECONDS}s: {', '.join(pending)}\n{details}")
        time.sleep(0.2)


def _log_contains(path: Path, marker: str, times: int = 1) -> Callable[[], bool]:
    return lambda: path.read_text(errors="replace").count(marker) >= times


def _http_answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            # An unknown path: a JSON 404 without authentication (so no lockout counting).
            requests.get(f"{url}/__bench_ready", timeout=2)
        except requests.RequestException:
            return False
        return True

    return check


def _egress_answers(port: int) -> Callable[[], bool]:
    from workers.egress import HEALTH_BODY, HEALTH_HOST

    def check() -> bool:
        try:
            reply = requests.get(
                f"http://{HEALTH_HOST}/", proxies={"http": f"http://127.0.0.1:{port}"}, timeout=2
            )
        except requests.RequestException:
            return False
        return reply.content == HEALTH_BODY

    return check


def _kill_leftover_browsers(profile_root: Path) -> list[tuple[int, str]]:
    """Kill chromium/chromedriver processes of this stack that outlived it; return what was found."""
    leftovers = processes_mentioning(f"{profile_root}/")
    for pid, _ in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if leftovers:
        deadline = time.monotonic() + 10
        while processes_mentioning(f"{profile_root}/") and time.monotonic() < deadline:
            time.sleep(0.2)
    return leftovers


_END_ALL_SESSIONS = """
import time
from sessions.models import LIVE_STATUSES, BrowserSession, SessionStatus
from sessions.services import session_terminate
for pk in BrowserSession.objects.filter(status__in=LIVE_STATUSES).values_list("pk", flat=True):
    session_terminate(session_id=pk, reason="admin")
deadline = time.monotonic() + {timeout}
unreleased = BrowserSession.objects.filter(status=SessionStatus.TERMINATED, browser_released_at__isnull=True)
while unreleased.exists() and time.monotonic() < deadline:
    time.sleep(0.2)
print(unreleased.count())
"""


def _end_live_sessions(stack: Stack) -> None:
    """End what the benchmark left running, through the service, while the worker still runs."""
    live = stack.db_query(
        "SELECT count(*) FROM browser_sessions_browsersession"
        " WHERE status <> 'terminated' OR browser_released_at IS NULL"
    )[0][0]
    if not live:
        return
    log(f"ending {live} sessions left live or unreleased")
    out = stack.manage(
        "shell", "-c", _END_ALL_SESSIONS.format(timeout=END_SESSIONS_TIMEOUT_SECONDS), timeout=120
    )
    unreleased = out.strip().splitlines()[-1] if out.strip() else "?"
    if unreleased != "0":
        log(f"{unreleased} browsers not released by the worker in time (killed below)")


@contextlib.contextmanager
def _exclusive_redis_db(db: int) -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / f"browserfleet-bench-redis{db}.lock"
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"another benchmark holds {path} (Redis database {db}); run benchmarks one at a time"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the `finally` below still cleans up."""

    def handler(signum: int, frame: Any) -> None:
        # Once: a second SIGTERM (`timeout` and a `pkill` both sending one) must not cut the
        # cleanup short, or the stack and its browsers outlive the run.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def running_stack(
    *,
    name: str,
    env_overrides: dict[str, str] | None = None,
    redis_db: int = DEFAULT_REDIS_DB,
    redis_url: str | None = None,
    worker_concurrency: int = WORKER_CONCURRENCY,
    action_threads: int = ACTION_THREADS,
    jobs_worker_concurrency: int = 0,
    webhooks_worker_concurrency: int = 0,
    supervised: bool = False,
) -> Iterator[Stack]:
    """The whole service, isolated; see the module docstring.

    `worker_concurrency` is the lifecycle worker's `-c` (LIFECYCLE_CONCURRENCY), `action_threads`
    the actions worker's (ACTION_THREADS).
    `jobs_worker_concurrency` above 0 also runs `bin/dev jobs-worker` (batch jobs) with that `-c`,
    `webhooks_worker_concurrency` `bin/dev webhooks-worker` (webhook deliveries).
    `redis_url` points the stack at a Redis server of the caller's own (the fault tests') instead
    of a database of the shared one; `env_overrides` can do the same for PostgreSQL
    (`POSTGRES_PORT`). `supervised` runs each process under `bin/dev supervise`, as
    `bin/dev serve` does, so one that exits is started again.
    """
    if not re.fullmatch(r"[a-z0-9_]{1,40}", name):
        raise ValueError("name must be 1-40 characters of a-z, 0-9 and _")
    if worker_concurrency < 1:
        raise ValueError("worker_concurrency must be at least 1")
    database = f"{DB_PREFIX}_{name}"
    workdir = Path(tempfile.mkdtemp(prefix=f"bf-bench-{name}-"))
    # mkdtemp's 0700 would keep each browser's own uid out of its profile, and the worker would
    # fall back to running browsers as root without Chromium's sandbox: not what a service runs.
    workdir.chmod(0o711)
    profile_root = workdir / "browsers"
    profile_root.mkdir()
    env = {
        **os.environ,
        "BROWSERFLEET_ENV": "development",
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": os.environ.get("POSTGRES_PORT", "5432"),
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        "REDIS_URL": redis_url or f"redis://127.0.0.1:6379/{redis_db}",
        "BROWSER_PROFILE_ROOT": str(profile_root),
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{Path(PYTHON).parent}:{os.environ.get('PATH', '')}",
        "VENV": str(Path(PYTHON).parent.parent),  # bin/dev runs the same interpreter
    }
    env.pop("SELENIUM_GRID_URL", None)
    env.pop("BROWSER_BACKEND", None)
    # The stack's own egress filter (as `bin/dev serve` runs one): pages are served on 127.0.0.1.
    env["BROWSER_EGRESS_ENABLED"] = "true"
    env["BROWSER_EGRESS_HOST"] = "127.0.0.1"
    env["BROWSER_EGRESS_PORT"] = str(free_port())
    env["BROWSER_EGRESS_ALLOW"] = "127.0.0.1/32"
    env.update(env_overrides or {})
    env["POSTGRES_DB"] = database
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stack: Stack | None = None
    failed = True
    db_created = False
    redis_lock = contextlib.nullcontext() if redis_url else _exclusive_redis_db(redis_db)
    with _sigterm_as_exit(), redis_lock:
        try:
            log(f"database {database}, Redis db {redis_db}, profiles in {profile_root}")
            _create_database(env, database)
            db_created = True
            run_checked([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, timeout=300)
            redis.Redis.from_url(env["REDIS_URL"]).flushdb()

            run = ["supervise"] if supervised else []
            web_log, worker_log, beat_log = (workdir / f"{p}.log" for p in ("web", "worker", "beat"))
            if env["BROWSER_EGRESS_ENABLED"] == "true":
                processes["egress"] = _start(
                    [str(REPO / "bin" / "dev"), *run, "egress"], env=env, log_file=workdir / "egress.log"
                )
            # The very commands `bin/dev serve` runs, configured through their environment.
            processes["web"] = _start(
                [str(REPO / "bin" / "dev"), *run, "web"],
                env={**env, "BIND": f"127.0.0.1:{port}", "WEB_WORKERS": str(WEB_WORKERS),
                     "WEB_THREADS": str(WEB_THREADS)},
                log_file=web_log,
            )  # fmt: skip
            processes["worker"] = _start(
                [str(REPO / "bin" / "dev"), *run, "worker"],
                env={
                    **env,
                    "LIFECYCLE_CONCURRENCY": str(worker_concurrency),
                    "ACTION_THREADS": str(action_threads),
                    "WORKER_NAME": f"bench-{name}@%h",
                },
                log_file=worker_log,
            )
            jobs_log = workdir / "jobs-worker.log"
            if jobs_worker_concurrency > 0:
                processes["jobs-worker"] = _start(
                    [str(REPO / "bin" / "dev"), *run, "jobs-worker"],
                    env={
                        **env,
                        "JOBS_WORKER_CONCURRENCY": str(jobs_worker_concurrency),
                        "JOBS_WORKER_NAME": f"bench-jobs-{name}@%h",
                    },
                    log_file=jobs_log,
                )
            hooks_log = workdir / "webhooks-worker.log"
            if webhooks_worker_concurrency > 0:
                processes["webhooks-worker"] = _start(
                    [str(REPO / "bin" / "dev"), *run, "webhooks-worker"],
                    env={
                        **env,
                        "WEBHOOKS_WORKER_CONCURRENCY": str(webhooks_worker_concurrency),
                        "WEBHOOKS_WORKER_NAME": f"bench-webhooks-{name}@%h",
                    },
                    log_file=hooks_log,
                )
            processes["beat"] = _start(
                [str(REPO / "bin" / "dev"), *run, "beat"],
                env={**env, "BEAT_SCHEDULE": str(workdir / "celerybeat-schedule")},
                log_file=beat_log,
            )
            started = time.monotonic()
            checks = {
                "web": (processes["web"], web_log, _http_answers(base_url)),
                # Both Celery workers (lifecycle and actions) log "ready." into this log.
                "worker": (processes["worker"], worker_log, _log_contains(worker_log, "ready.", 2)),
                "beat": (processes["beat"], beat_log, _log_contains(beat_log, "beat: Starting")),
            }
            if "jobs-worker" in processes:
                checks["jobs-worker"] = (
                    processes["jobs-worker"],
                    jobs_log,
                    _log_contains(jobs_log, "ready."),
                )
            if "webhooks-worker" in processes:
                checks["webhooks-worker"] = (
                    processes["webhooks-worker"],
                    hooks_log,
                    _log_contains(hooks_log, "ready."),
                )
            if "egress" in processes:
                checks["egress"] = (
                    processes["egress"],
                    workdir / "egress.log",
                    _egress_answers(int(env["BROWSER_EGRESS_PORT"])),
                )
            _wait_ready(checks)
            log(f"stack ready at {base_url} in {time.monotonic() - started:.1f}s")
            db = _connect(env, database)
            stack = Stack(
                name=name,
                base_url=base_url,
                env=env,
                database=database,
                workdir=workdir,
                profile_root=profile_root,
                _db=db,
                processes=processes,
            )
            yield stack
            failed = False
        finally:
            _teardown(stack, processes, env, database if db_created else None, profile_root, workdir, failed)


def _teardown(
    stack: Stack | None,
    processes: dict[str, subprocess.Popen[bytes]],
    env: dict[str, str],
    database: str | None,
    profile_root: Path,
    workdir: Path,
    failed: bool,
) -> None:
    # Each step runs even if an earlier one fails: nothing may be left behind.
    if stack is not None and processes.get("worker") and processes["worker"].poll() is None:
        try:
            _end_live_sessions(stack)
        except Exception as exc:
            log(f"could not end live sessions through the service: {exc}")
    for label in ("beat", "web", "jobs-worker", "webhooks-worker", "worker", "egress"):
        if label in processes:
            try:
                _stop(processes[label], label)
            except Exception as exc:
                log(f"stopping {label}: {exc}")
    leaked = _kill_leftover_browsers(profile_root)
    if leaked:
        failed = True
        log(f"killed {len(leaked)} browser processes that outlived the stack:")
        for pid, cmdline in leaked:
            log(f"  {pid} {cmdline}")
    if stack is not None:
        stack.leaked = leaked
        with contextlib.suppress(Exception):
            stack._db.close()
    if database is not None:
        try:
            _drop_database(env, database)
        except Exception as exc:
            log(f"could not drop database {database}: {exc}")
    try:
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    except Exception as exc:
        log(f"could not flush {env['REDIS_URL']}: {exc}")
    if failed or os.environ.get("BENCH_KEEP_LOGS"):
        log(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


# --- reports: what every benchmark records with its figures -------------------------------------
def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median": None, "p90": None, "min": None, "max": None, "mean": None}
    return {
        "n": len(values),
        "median": round(statistics.median(values), 4),
        "p90": round(percentile(values, 90), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "mean": round(statistics.fmean(values), 4),
    }


def _output(cmd: list[str]) -> str:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip()


def machine_info() -> dict[str, Any]:
    chromium = re.search(r"Chromium [\d.]+", _output(["chromium", "--version"]))
    chromedriver = re.search(r"ChromeDriver [\d.]+", _output(["chromedriver", "--version"]))
    cpu_model = ""
    mem_total = ""
    try:
        cpu_model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        mem_total = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    return {
        "nproc": int(_output(["nproc"]) or os.cpu_count() or 0),
        "cpu_model": cpu_model,
        "mem_total": mem_total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "chromium": chromium.group(0) if chromium else "unknown",
        "chromedriver": chromedriver.group(0) if chromedriver else "unknown",
        **source_info(),
    }


def source_info() -> dict[str, Any]:
    """The code measured: the checkout's commit, or BENCH_SOURCE_COMMIT for an exported tree."""
    if (REPO / ".git").exists():
        return {
            "git_commit": _output(["git", "rev-parse", "--short", "HEAD"]),
            "git_dirty": bool(_output(["git", "status", "--porcelain", "--untracked-files=no"])),
            "source": str(REPO),
        }
    return {
        "git_commit": os.environ.get("BENCH_SOURCE_COMMIT", "unknown"),
        "git_dirty": None,
        "source": f"exported tree {REPO}",
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- a) create-to-ready -----------------------------------------------------------------------


def report_header(benchmark: str) -> dict[str, Any]:
    """The start of a benchmark's results: what ran, when, where, at what load."""
    return {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["bin/dev", "bench", benchmark, *sys.argv[1:]]),
        "machine": machine_info(),
        "loadavg_start": loadavg(),
    }


def report_write(results: dict[str, Any], output: Path, text: str) -> None:
    """Write the results as JSON to `output` and print their Markdown summary `text`."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(text)
    log(f"wrote {output}")
