"""Sandbox uids (issue 19 item 5): leased per host, never shared by two live browsers, and
everything left running as a browser's uid is killed when it stops."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import wait_until
from workers.browser import local
from workers.browser.base import Display
from workers.browser.errors import BrowserStartError
from workers.browser.local import LocalBackend
from workers.browser.sandbox import UidLeases, sandbox_prepare

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="only a root worker runs browsers as uids of their own"),
    # Browsers start only with the egress filter answering (the stack tier).
    pytest.mark.usefixtures("egress_filter"),
]


@pytest.fixture
def lease_dir(tmp_path: Path, settings: Any) -> Path:
    settings.BROWSER_SANDBOX_UID_DIR = tmp_path / "uids"
    return Path(settings.BROWSER_SANDBOX_UID_DIR)


@pytest.fixture
def browsers() -> Iterator[Path]:
    """A profile root the browsers' uids can pass through (pytest's tmp_path is 0700 root's)."""
    root = Path(tempfile.mkdtemp(prefix="bf-uids-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _colliding_ids() -> tuple[str, str]:
    """Two session ids that sha256(id) mod 50000 (the old scheme) maps to one uid."""
    seen: dict[int, str] = {}
    for n in range(100_000):
        session_id = f"comp_{n:024d}"
        slot = int(hashlib.sha256(session_id.encode()).hexdigest(), 16) % 50_000
        if slot in seen:
            return seen[slot], session_id
        seen[slot] = session_id
    raise AssertionError("no collision found")


def test_two_live_browsers_never_share_a_uid(browsers: Path, lease_dir: Path) -> None:
    first, second = _colliding_ids()
    plans = []
    for session_id in (first, second):
        session_dir = browsers / session_id
        session_dir.mkdir(parents=True)
        plans.append(sandbox_prepare(session_id=session_id, session_dir=session_dir))
    assert plans[0].uid is not None and plans[1].uid is not None
    assert plans[0].uid != plans[1].uid
    assert os.stat(browsers / first).st_uid != os.stat(browsers / second).st_uid
    assert UidLeases.configured().holders() == {
        plans[0].uid: str(browsers / first),
        plans[1].uid: str(browsers / second),
    }


def test_leases_go_round_the_range_and_come_back(tmp_path: Path) -> None:
    leases = UidLeases(tmp_path, base=300_000, span=3)
    assert [leases.lease(name) for name in ("a", "b", "c")] == [300_000, 300_001, 300_002]
    assert leases.lease("a") == 300_000  # already held
    with pytest.raises(RuntimeError, match="no sandbox uid is free"):
        leases.lease("d")
    assert leases.release("b") == 300_001
    assert leases.release("b") is None
    assert leases.lease("d") == 300_001
    assert leases.holders() == {300_000: "a", 300_001: "d", 300_002: "c"}
    # A reclaimer frees leases whose holder is gone, never the others.
    assert leases.reclaim(lambda name: name == "c") == [300_002]
    assert leases.holder("c") is None and leases.holder("a") == 300_000
    # One lease, asked by its uid: held by that name only; given back only by that uid.
    assert leases.holds("a", 300_000) and not leases.holds("d", 300_000)
    assert not leases.holds("c", 300_002)
    assert leases.release("a", only=300_001) is None and leases.holds("a", 300_000)
    assert leases.release("a", only=300_000) == 300_000 and not leases.holds("a", 300_000)


def _uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_stop_kills_whatever_still_runs_as_the_browsers_uid(browsers: Path, lease_dir: Path) -> None:
    backend = LocalBackend(root=browsers)
    session_id = f"comp_{uuid.uuid4().hex[:24]}"
    handle = backend.start(session_id=session_id, display=Display(640, 480, 1.0))
    straggler = None
    try:
        assert handle.browser_pid is not None
        uid = _uid_of(handle.browser_pid)
        assert uid != 0
        # What an escaped renderer or a double-forked helper would leave: a process as the
        # browser's uid, out of its process group, without the session id on its command line.
        straggler = subprocess.Popen(
            ["sleep", "600"], user=uid, group=uid, extra_groups=[], start_new_session=True
        )
        (Path("/tmp") / f"bf-left-{uuid.uuid4().hex[:8]}").write_text("x")
        os.chown(next(Path("/tmp").glob("bf-left-*")), uid, uid)
    finally:
        backend.stop(handle, session_id=session_id)
    assert straggler is not None
    try:
        wait_until(lambda: straggler.poll() is not None, timeout=5, message="the straggler to be killed")
    finally:
        if straggler.poll() is None:
            straggler.kill()
            straggler.wait()
    assert not [p for p in Path("/tmp").glob("bf-left-*") if p.stat().st_uid == uid]
    assert UidLeases.configured().holder(str(browsers / session_id)) is None


def test_a_uid_is_cleaned_before_anyone_can_lease_it_again(
    browsers: Path, lease_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cleaning a uid (killing what runs as it, removing its proxy route) happens under the lease
    lock while the uid is still leased: a start that leased the uid meanwhile would have its
    route removed and run direct, or its browser killed. Both ways a uid is given back: a
    browser's stop, and reconcile's reclaim of a lease whose browser is gone altogether."""
    backend = LocalBackend(root=browsers)
    leases = UidLeases.configured()
    stopped, gone = "comp_stoppedbrowser00000001", "comp_gonebrowser000000000001"
    (browsers / stopped).mkdir()
    stopped_uid = leases.lease(str(browsers / stopped))
    gone_uid = leases.lease(str(browsers / gone))  # no directory, no process: its worker died
    seen: list[tuple[int, bool, bool]] = []

    def cleanup(uid: int) -> None:
        with open(lease_dir / ".lock") as lock:  # another open file: flock conflicts with the holder's
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                locked = True
            else:
                fcntl.flock(lock, fcntl.LOCK_UN)
                locked = False
        seen.append((uid, (lease_dir / str(uid)).exists(), locked))

    monkeypatch.setattr("workers.browser.local.end_uid", cleanup)
    backend._end_lease(stopped)
    backend.kill_orphans_of(set)
    assert seen == [(stopped_uid, True, True), (gone_uid, True, True)]
    assert leases.holders() == {}
    # A second stop of the same browser cleans nothing (the uid may be another browser's by now).
    backend._end_lease(stopped)
    assert len(seen) == 2


def test_a_start_whose_lease_another_start_took_fails_and_leaves_that_one_alone(
    browsers: Path, lease_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two starts of one browser (a redelivered task while the first still starts): the later one
    ends the earlier one's lease and takes the name. The earlier one must not come up as a browser
    whose uid is nobody's (another browser may lease it, with its own route), nor give back the
    later one's lease or remove its directory when it fails."""
    backend = LocalBackend(root=browsers)
    leases = UidLeases.configured()
    session_id = f"comp_{uuid.uuid4().hex[:24]}"
    holder = str(browsers / session_id)
    taken: list[int] = []
    prepare = local.prepare_first_tab

    def the_other_start_takes_over(*args: Any, **kwargs: Any) -> None:
        prepare(*args, **kwargs)
        ours = leases.holder(holder)
        assert ours is not None
        leases.release(holder)  # what the later start's _end_lease does (its cleanup aside)
        taken.append(leases.lease(holder))
        assert taken[0] != ours

    monkeypatch.setattr(local, "prepare_first_tab", the_other_start_takes_over)
    with pytest.raises(BrowserStartError, match="another start of this browser"):
        backend.start(session_id=session_id, display=Display(640, 480, 1.0))
    try:
        assert leases.holder(holder) == taken[0]  # the later start's lease is untouched
        assert (browsers / session_id).is_dir()  # and so is its directory
        wait_until(  # the earlier browser is gone (killed by its process tree, not by its uid)
            lambda: not backend._browser_groups().get(session_id),
            timeout=5,
            message="the earlier start's processes to go",
        )
    finally:
        backend._end_lease(session_id)
        shutil.rmtree(browsers / session_id, ignore_errors=True)
