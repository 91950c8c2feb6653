"""Fast creates and a fleet (issue 12): warm pool, separate worker pools, capacity, sweep at scale.

    bin/dev bench fleet [--browser chromium|headless_shell] [--creates 10] [--live 60] [--more 20] ...

Two stacks, the same commands `bin/dev serve` runs (bench/harness.py), in one run:

Every create asks for `--browser` (the create's `browser` field: chromium, the default, or
headless_shell; docs/operations.md "Browser flavours").

A) the pool of that flavour `--pool` (4): `--creates` sequential creates, each once the pool is full
   again (so each claims a warm browser), and DELETE; the same number of raw `webdriver.Chrome()`
   cold starts (Selenium's own client, our Chromium flags) interleaved, for the same conditions;
   PSS of each pool browser and of live sessions that loaded a page.
B) no warm pool: `--creates` sequential cold creates; `--burst` creates `--burst-parallel`
   (8) at a time, wall time; `--live` sessions each clicking every 5 s while `--more` more are
   created 4 at a time (errors, click p50/p99, create p50/p90); idle-expiry lag (browser gone
   after `idle_expires_at`) of `--idle` sessions; the sweep of `--expired` expired sessions among
   `--rows` rows (Beat stopped, one sweep run timed).

Writes bench/results/fleet.json and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from harness import (
    REPO,
    Stack,
    _stop,
    loadavg,
    log,
    percentile,
    report_header,
    running_stack,
    summary,
)

HTTP = 60

# What the live sessions load: navigate accepts http(s) only, so the bench serves it on loopback.
BUTTON_PAGE = b"<title>bench</title><button style='width:300px;height:300px'>go</button>"


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(BUTTON_PAGE)))
        self.end_headers()
        self.wfile.write(BUTTON_PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_page() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


def navigate(http: requests.Session, stack: Stack, session_id: str, url: str) -> None:
    reply = http.post(f"{stack.base_url}/v1/computers/{session_id}/navigate", json={"url": url}, timeout=HTTP)
    body = reply.json() if reply.status_code == 200 else {}
    if body.get("status") != "success":
        log(f"navigate failed: {reply.status_code} {reply.text[:160]}")


def _session(key: str) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    return http


FULL_CHROMIUM = "/usr/bin/chromium"
# The flavour every create asks for (--browser).
BROWSER = "chromium"
# The settings that name each flavour's binary and warm pool (project/settings.py).
BINARY_SETTING = {"chromium": "CHROMIUM_BINARY", "headless_shell": "CHROMIUM_HEADLESS_SHELL_BINARY"}
POOL_SETTING = {"chromium": "BROWSER_POOL_SIZE", "headless_shell": "BROWSER_POOL_SIZE_HEADLESS_SHELL"}


def service_binary(stack: Stack) -> str:
    """The binary the stack's workers start for BROWSER's creates."""
    setting = BINARY_SETTING[BROWSER]
    out = stack.manage("shell", "-c", f"from django.conf import settings; print(settings.{setting})")
    return out.split()[-1]


# The uid raw sandboxed baselines run as (the service takes one per session from 200000 on).
RAW_UID = 199_999


def raw_cold_start(binary: str, *, sandboxed: bool = False) -> float:
    """One `webdriver.Chrome()` as a user would write it, with our flags; seconds to ready.

    As root Chromium refuses its sandbox: unsandboxed, the baseline runs as root with
    --no-sandbox; sandboxed, chromedriver and Chromium run as RAW_UID with Chromium's sandbox, as
    a user who is not root runs them and as the service runs every browser. The headless shell
    goes through the same one-line launcher the service uses (it opens no tab without a URL)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from workers.browser.options import CHROMIUM_ARGS, headless_shell_launcher, is_headless_shell

    options = webdriver.ChromeOptions()
    shell = is_headless_shell(binary)
    as_uid = sandboxed and os.geteuid() == 0
    with tempfile.TemporaryDirectory(prefix="bf-bench-raw-") as profile:
        if as_uid:
            Path(profile).chmod(0o711)  # the uid passes through to its home, lists nothing
            home = Path(profile) / "home"
            home.mkdir()
            os.chown(home, RAW_UID, RAW_UID)
            profile = str(home)
        if shell:
            launcher = Path(profile) / "chromium"
            launcher.write_text(headless_shell_launcher(binary))
            launcher.chmod(0o755)
            options.binary_location = str(launcher)
        else:
            options.binary_location = binary
        extra = ["--no-sandbox"] if os.geteuid() == 0 and not as_uid else []
        args = [a for a in CHROMIUM_ARGS if not (shell and a.startswith("--headless"))]
        for arg in [*args, *extra, "--window-size=1024,768", f"--user-data-dir={profile}/p"]:
            options.add_argument(arg)
        service_kw: dict[str, Any] = {}
        if as_uid:
            service_kw = {
                "env": {"PATH": "/usr/bin:/bin", "HOME": profile},
                "popen_kw": {"user": RAW_UID, "group": RAW_UID, "extra_groups": []},
            }
        started = time.perf_counter()
        driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver", **service_kw))
        elapsed = time.perf_counter() - started
        driver.quit()
    return elapsed


def pss_kb(marker: str) -> int:
    """Summed PSS of the process groups of the processes whose command line contains `marker` (a
    profile path): the headless shell's helpers do not carry the path, but share the group that
    chromedriver started (workers/browser/local.py)."""
    from tests.support.processes import browser_processes

    groups = set()
    for pid, _ in browser_processes(marker):
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            continue
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) not in groups:
                continue
            for line in Path(f"/proc/{entry.name}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def wait_pool(stack: Stack, size: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            stack.db_query("SELECT count(*) FROM browser_sessions_warmbrowser WHERE state = 'ready'")[0][0]
            >= size
        ):
            return
        time.sleep(0.1)
    raise RuntimeError(f"pool did not reach {size} ready browsers")


def create(
    http: requests.Session, stack: Stack, body: dict[str, Any] | None = None
) -> tuple[float, str | None, str]:
    started = time.perf_counter()
    try:
        # The field only when it is not the default: the same run works against a main without it.
        flavour = {} if BROWSER == "chromium" else {"browser": BROWSER}
        reply = http.post(f"{stack.base_url}/v1/computers", json={**flavour, **(body or {})}, timeout=HTTP)
    except requests.RequestException as exc:
        return time.perf_counter() - started, None, f"POST: {exc}"
    elapsed = time.perf_counter() - started
    if reply.status_code != 201:
        return elapsed, None, f"POST {reply.status_code}: {reply.text[:160]}"
    return elapsed, reply.json()["id"], ""


def delete(http: requests.Session, stack: Stack, session_id: str) -> None:
    http.delete(f"{stack.base_url}/v1/computers/{session_id}", timeout=HTTP)


def warm_phase(stack: Stack, *, creates: int, pool: int) -> dict[str, Any]:
    http = _session(stack.make_account())
    warm, raw, raw_sandboxed, raw_full, claimed, failures = [], [], [], [], 0, []
    binary = service_binary(stack)
    for _ in range(creates):
        wait_pool(stack, pool)
        time.sleep(0.5)  # the refill's CPU settles
        elapsed, session_id, error = create(http, stack)
        if session_id is None:
            failures.append(error)
            continue
        warm.append(elapsed)
        profile = stack.db_query(
            "SELECT profile_dir FROM browser_sessions_browsersession WHERE id = %s", [session_id]
        )
        claimed += Path(profile[0][0]).name.startswith("pool_")
        delete(http, stack, session_id)
        raw.append(raw_cold_start(binary))
        raw_sandboxed.append(raw_cold_start(binary, sandboxed=True))
        raw_full.append(raw_cold_start(FULL_CHROMIUM) if binary != FULL_CHROMIUM else raw[-1])
        log(
            f"warm create {elapsed:.3f}s, raw cold start {raw[-1]:.3f}s, sandboxed {raw_sandboxed[-1]:.3f}s"
            f" (full Chromium {raw_full[-1]:.3f}s)"
        )
    wait_pool(stack, pool)
    pool_pss = [
        pss_kb(row[0]) for row in stack.db_query("SELECT profile_dir FROM browser_sessions_warmbrowser")
    ]
    return {
        "create_seconds": summary(warm),
        "browser_binary": binary,
        "raw_cold_start_seconds": summary(raw),
        "raw_sandboxed_cold_start_seconds": summary(raw_sandboxed),
        "raw_full_chromium_cold_start_seconds": summary(raw_full),
        "claimed_a_pool_browser": claimed,
        "failures": failures,
        "pool_browser_pss_mb": summary([p / 1024 for p in pool_pss]),
        "samples": {
            "create": [round(x, 4) for x in warm],
            "raw": [round(x, 4) for x in raw],
            "raw_sandboxed": [round(x, 4) for x in raw_sandboxed],
            "raw_full_chromium": [round(x, 4) for x in raw_full],
        },
    }


def session_pss(stack: Stack, http: requests.Session, count: int, page: str) -> dict[str, Any]:
    ids = [sid for _, sid, _ in (create(http, stack) for _ in range(count)) if sid]
    for sid in ids:
        navigate(http, stack, sid, page)
    time.sleep(2)
    rows = stack.db_query("SELECT profile_dir FROM browser_sessions_browsersession WHERE id = ANY(%s)", [ids])
    values = [pss_kb(r[0]) / 1024 for r in rows]
    for sid in ids:
        delete(http, stack, sid)
    return summary(values)


def cold_phase(stack: Stack, *, creates: int) -> dict[str, Any]:
    http = _session(stack.make_account())
    times, failures = [], []
    for _ in range(creates):
        elapsed, session_id, error = create(http, stack)
        if session_id is None:
            failures.append(error)
            continue
        times.append(elapsed)
        delete(http, stack, session_id)
    return {"create_seconds": summary(times), "failures": failures}


def burst_phase(stack: Stack, *, total: int, parallel: int) -> dict[str, Any]:
    http = _session(stack.make_account())
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(lambda _: create(http, stack), range(total)))
    wall = time.perf_counter() - started
    ids = [sid for _, sid, _ in results if sid]
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda sid: delete(http, stack, sid), ids))
    return {
        "creates": total,
        "parallel": parallel,
        "wall_seconds": round(wall, 3),
        "create_seconds": summary([t for t, sid, _ in results if sid]),
        "failures": [e for _, sid, e in results if not sid],
    }


def load_phase(stack: Stack, *, live: int, more: int, page: str, period: float = 5.0) -> dict[str, Any]:
    http = _session(stack.make_account())
    ids: list[str] = []

    def create_and_open(_: int) -> tuple[str | None, str]:
        # 60 full Chromium starts can take longer than a session's default idle timeout (120 s)
        # on 2 cores: the first sessions must not idle out while the last ones start (seen on a
        # slower VM: 14 of 60 ended idle before their first navigation). This phase measures
        # load, not idle expiry (the idle phase does).
        _, sid, error = create(http, stack, {"inactivity_timeout_seconds": 900})
        if sid:
            navigate(http, stack, sid, page)
        return sid, error

    with ThreadPoolExecutor(8) as pool:
        for sid, error in pool.map(create_and_open, range(live)):
            if sid:
                ids.append(sid)
            else:
                log(f"live session create failed: {error}")
    latencies: list[float] = []
    errors: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def clicker(sid: str, offset: float) -> None:
        client = _session(http.headers["Authorization"].split()[1])
        time.sleep(offset)
        while not stop.is_set():
            started = time.perf_counter()
            try:
                reply = client.post(
                    f"{stack.base_url}/v1/computers/{sid}/click", json={"x": 100, "y": 100}, timeout=HTTP
                )
                ok = reply.status_code == 200 and reply.json().get("status") == "success"
                problem = "" if ok else f"{reply.status_code} {reply.text[:120]}"
            except requests.RequestException as exc:
                problem = str(exc)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if problem:
                    errors.append(problem)
            stop.wait(max(0.0, period - elapsed))

    threads = [
        threading.Thread(target=clicker, args=(sid, i * period / max(1, len(ids))))
        for i, sid in enumerate(ids)
    ]
    for t in threads:
        t.start()
    time.sleep(period)  # all clicking
    with lock:
        latencies.clear()
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        created = list(pool.map(lambda _: create(http, stack), range(more)))
    creating = time.perf_counter() - started
    time.sleep(period)
    stop.set()
    for t in threads:
        t.join()
    for sid in ids + [sid for _, sid, _ in created if sid]:
        delete(http, stack, sid)
    return {
        "live_sessions": len(ids),
        "more_creates": more,
        "creates_wall_seconds": round(creating, 3),
        "create_seconds": summary([t for t, sid, _ in created if sid]),
        "create_failures": [e for _, sid, e in created if not sid],
        "clicks": len(latencies),
        "click_errors": errors[:20],
        "click_error_count": len(errors),
        "click_seconds": {
            **summary(latencies),
            "p99": round(percentile(latencies, 99), 4) if latencies else None,
        },
    }


def idle_phase(stack: Stack, *, sessions: int) -> dict[str, Any]:
    ids = []
    for _ in range(sessions):
        _, sid, _ = create(_session(stack.make_account()), stack, {"inactivity_timeout_seconds": 2})
        if sid:
            ids.append(sid)
    deadline = time.monotonic() + 90
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        rows = stack.db_query(
            "SELECT idle_expires_at, browser_released_at, ended_reason FROM browser_sessions_browsersession"
            " WHERE id = ANY(%s)",
            [ids],
        )
        if all(r[1] is not None for r in rows):
            break
        time.sleep(0.25)
    lags = [(r[1] - r[0]).total_seconds() for r in rows if r[1] is not None and r[2] == "idle"]
    return {
        "sessions": len(ids),
        "lag_seconds": {**summary(lags), "p99": round(percentile(lags, 99), 4) if lags else None},
    }


def sweep_phase(stack: Stack, *, rows: int, expired: int) -> dict[str, Any]:
    _stop(stack.processes["beat"], "beat")  # one timed sweep, no Beat run beside it
    stack.make_account(name="bench-sweep")
    account = stack.db_query("SELECT id FROM accounts_account WHERE name = 'bench-sweep'")[0][0]
    stack.db_query(
        "INSERT INTO browser_sessions_browsersession (id, account_id, kind, status, ended_reason, error,"
        " created_at, last_activity_at, expires_at, idle_expires_at, max_lifetime_seconds,"
        " inactivity_timeout_seconds, idle_timeout_enabled, display_width, display_height, display_scale,"
        " options, backend, webdriver_url, webdriver_session_id, host, profile_dir, main_tab_id,"
        " billed_minutes)"
        " SELECT 'comp_sweep' || g, %s, 'browser', 'running', '', '', now(), now(),"
        " now() + interval '1 hour',"
        " CASE WHEN g <= %s THEN now() - interval '1 minute' ELSE now() + interval '1 hour' END,"
        " 3600, 120, true, 1024, 768, 1.0, '{}', '', '', '', '', '', '', 1"
        " FROM generate_series(1, %s) g",
        [account, expired, rows],
    )
    stack.db_query("ANALYZE browser_sessions_browsersession")
    out = stack.manage(
        "shell",
        "-c",
        "import time; from sessions.services import sessions_sweep; t = time.perf_counter();"
        " n = sessions_sweep(); print(n, time.perf_counter() - t)",
        timeout=600,
    )
    ended, seconds = out.split()[-2:]
    stack.db_query(
        "DELETE FROM browser_sessions_browsersession WHERE account_id = %s AND id LIKE 'comp_sweep%%'",
        [account],
    )
    return {"rows": rows, "expired": expired, "ended": int(ended), "sweep_seconds": round(float(seconds), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--creates", type=int, default=10)
    parser.add_argument("--pss-sessions", type=int, default=4)
    parser.add_argument("--burst", type=int, default=40)
    parser.add_argument("--burst-parallel", type=int, default=8)
    parser.add_argument("--live", type=int, default=60)
    parser.add_argument("--more", type=int, default=20)
    parser.add_argument("--idle", type=int, default=10)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--expired", type=int, default=10_000)
    parser.add_argument(
        "--skip", default="", help="comma-separated phases to skip: warm,cold,burst,load,idle,sweep"
    )
    parser.add_argument(
        "--browser",
        choices=sorted(BINARY_SETTING),
        default="chromium",
        help="the flavour every create asks for (the create's `browser`), and of the warm pool",
    )
    parser.add_argument("--redis-db", type=int, default=13, help="Redis database of the stacks (13)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "fleet.json")
    args = parser.parse_args()
    global BROWSER
    BROWSER = args.browser
    skip = set(filter(None, args.skip.split(",")))
    results: dict[str, Any] = {
        **report_header("fleet"),
        "leaked": [],
    }
    common = {
        "BROWSERS_PER_HOST": "200",
        "LOG_LEVEL": "WARNING",
        "BROWSER_POOL_SIZE": "0",
        "BROWSER_POOL_SIZE_HEADLESS_SHELL": "0",
    }
    page = serve_page()
    if "warm" not in skip:
        with running_stack(
            name="fleet_warm",
            env_overrides={**common, POOL_SETTING[BROWSER]: str(args.pool)},
            redis_db=args.redis_db,
        ) as stack:
            results["warm"] = warm_phase(stack, creates=args.creates, pool=args.pool)
            results["live_session_pss_mb"] = session_pss(
                stack, _session(stack.make_account()), args.pss_sessions, page
            )
            results["warm"]["loadavg"] = loadavg()
        results["leaked"] += stack.leaked
    with running_stack(name="fleet_cold", env_overrides=common, redis_db=args.redis_db) as stack:
        for phase, run in (
            ("cold", lambda: cold_phase(stack, creates=args.creates)),
            ("burst", lambda: burst_phase(stack, total=args.burst, parallel=args.burst_parallel)),
            ("load", lambda: load_phase(stack, live=args.live, more=args.more, page=page)),
            ("idle", lambda: idle_phase(stack, sessions=args.idle)),
            ("sweep", lambda: sweep_phase(stack, rows=args.rows, expired=args.expired)),
        ):
            if phase in skip:
                continue
            log(f"phase {phase}, load average {loadavg()}")
            results[phase] = {**run(), "loadavg_after": loadavg()}
            log(f"{phase}: {json.dumps({k: v for k, v in results[phase].items() if k != 'samples'})}")
    results["leaked"] += stack.leaked
    results["loadavg_end"] = loadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(
        json.dumps({k: v for k, v in results.items() if k not in ("machine",)}, indent=1, default=str)[:6000]
    )
    return 1 if results["leaked"] else 0


if __name__ == "__main__":
    sys.exit(main())
