"""A Redis server and a PostgreSQL cluster of a test's own, on free loopback ports.

Fault tests stop and restart these; the machine's shared PostgreSQL and Redis, which CI and
every other test use, are never touched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _wait(predicate, *, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


class PrivateRedis:
    """`redis-server` on 127.0.0.1:<free port>, nothing kept on disk."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        _wait(lambda: _port_answers(self.port), timeout=20, what=f"redis on {self.port}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill()  # an outage, not a clean shutdown: nothing is saved anyway
        self.process.wait(timeout=10)
        _wait(lambda: not _port_answers(self.port), timeout=10, what=f"redis on {self.port} to stop")


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found (Debian package postgresql)")
    return Path(found[-1]).parent


class PrivatePostgres:
    """A throwaway cluster (initdb + pg_ctl) on 127.0.0.1:<free port>, trust authentication.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user, in
    a directory of its own under the system's temporary directory (pytest's are root-only).
    """

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="bf-test-pg-"))
        self.datadir = self.workdir / "pgdata"
        self.port = free_port()
        self.bin = _postgres_bin()
        self._user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.workdir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.workdir / "postgres.log"), "-w", "start")
        _wait(lambda: _port_answers(self.port), timeout=30, what=f"postgres on {self.port}")

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)
