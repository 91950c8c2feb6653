"""The sandbox firewall (issue 19 item 5): a browser's uid may connect to the egress filter and
nowhere else on the host, and Chromium leaves no DevTools port listening.

The rule is installed for a uid range of this test's own (400000 up), never the common one
(other checkouts' browsers share this machine), and removed at the end. Targets are loopback
listeners of the test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workers.browser import firewall
from workers.browser.base import Display, webdriver_request
from workers.browser.local import LocalBackend

BASE = 400_000

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="only a root worker runs browsers as uids of their own"),
    # Browsers start only with the egress filter answering (the stack tier).
    pytest.mark.usefixtures("egress_filter"),
]

_CONNECT = """
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


@pytest.fixture
def walled(settings: Any, tmp_path: Path) -> Iterator[LocalBackend]:
    if shutil.which("nft") is None and not Path("/usr/sbin/nft").exists():
        pytest.fail("nft is not installed: bin/dev install puts nftables in")
    settings.BROWSER_SANDBOX_UID_BASE = BASE
    settings.BROWSER_SANDBOX_UID_DIR = tmp_path / "uids"
    settings.BROWSER_SANDBOX_FIREWALL = "on"
    root = Path(tempfile.mkdtemp(prefix="bf-wall-"))
    firewall.remove(base=BASE)
    try:
        yield LocalBackend(root=root)
    finally:
        firewall.remove(base=BASE)
        shutil.rmtree(root, ignore_errors=True)


def _as_uid(uid: int, port: int) -> str:
    done = subprocess.run(
        ["/usr/bin/python3", "-c", _CONNECT, str(port)],
        user=uid,
        group=uid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        cwd="/",
    )
    return done.stdout.strip() or done.stderr.strip()[-200:]


def _uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Uid:")).split()[1])


def _listening_ports(uid: int) -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[7]) == uid:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_a_browsers_uid_reaches_the_egress_filter_and_nothing_else(
    walled: LocalBackend, pages_server: str, settings: Any
) -> None:
    session_id = f"comp_{uuid.uuid4().hex[:24]}"
    handle = walled.start(session_id=session_id, display=Display(640, 480, 1.0))
    with socket.socket() as internal:
        internal.bind(("127.0.0.1", 0))
        internal.listen()
        try:
            assert handle.browser_pid is not None
            uid = _uid_of(handle.browser_pid)
            assert BASE <= uid < BASE + 50_000
            # Pages still load, through the filter.
            base = f"{handle.webdriver_url}/session/{handle.webdriver_session_id}"
            webdriver_request("POST", f"{base}/url", body={"url": f"{pages_server}/form.html"})
            assert webdriver_request("GET", f"{base}/title")["value"]
            # Code running as the browser's uid: the filter yes, anything else on the host no.
            assert _as_uid(uid, int(settings.BROWSER_EGRESS_PORT)) == "connected"
            assert _as_uid(uid, int(internal.getsockname()[1])) == "ConnectionRefusedError"
            chromedriver_port = int(handle.webdriver_url.rsplit(":", 1)[1])
            # No DevTools port: chromedriver's own is the only one the uid listens on, and
            # another sandbox uid cannot reach even that.
            assert _listening_ports(uid) == {chromedriver_port}
            assert _as_uid(uid + 1, chromedriver_port) == "ConnectionRefusedError"
            # Other uids are not matched: this process reaches the listener.
            socket.create_connection(internal.getsockname(), timeout=3).close()
        finally:
            walled.stop(handle, session_id=session_id)
