"""The worker's part of a restore, without the stack: `state_import` into fresh local browsers.

    bin/dev bench saved_state_import [--reps 4] [--compare /path/to/other/checkout]

For each case (10 KB and 1 MB in IndexedDB in one origin, 10 KB in each of three origins) and
each round: a browser is started (egress filter off: the import never reaches the network), its
first tab prepared as a pool browser's is, left idle 1 s, then one `state_import` is timed and
the browser stopped. With `--compare`, the `workers/browser/saved_state.py` of another checkout
(e.g. `git archive <commit> | tar -x -C /tmp/old`) is timed the same way, alternating which goes
first each round, so both see the same load. Prints the samples as they come, then medians; the
load average with each sample (the figures mean little on a busy machine).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("BROWSERFLEET_ENV", "development")
os.environ["BROWSER_EGRESS_ENABLED"] = "false"
os.environ.setdefault("BROWSER_START_TIMEOUT_SECONDS", "90")

CASES = [(10_240, 1), (1_048_576, 1), (10_240, 3)]


def make_state(size: int, origins: int) -> dict[str, Any]:
    chunk = 65_536
    records = [[i, "x" * min(chunk, size - at)] for i, at in enumerate(range(0, size, chunk))]
    store = {"name": "blobs", "keyPath": None, "autoIncrement": False, "indexes": [], "records": records}
    data = {
        "localStorage": [["profile", "bench"]],
        "indexedDB": [{"name": "bench", "version": 1, "stores": [store]}],
    }
    return {
        "format": 1,
        "cookies": [{"name": "sid", "value": "bench", "domain": "127.0.0.1", "path": "/"}],
        "origins": {f"http://127.0.0.1:{9000 + n}": data for n in range(origins)},
        "sessionStorage": {},
    }


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--compare", type=Path, help="another checkout whose import to time as well")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bf-bench-import-"))
    root.chmod(0o711)  # each browser's own uid must reach its profile
    os.environ["BROWSER_PROFILE_ROOT"] = str(root)

    import django

    django.setup()
    from workers.browser.base import Display, prepare_first_tab
    from workers.browser.local import LocalBackend

    versions = {"this": _load(REPO / "workers/browser/saved_state.py", "saved_state_this")}
    if args.compare:
        versions["other"] = _load(args.compare / "workers/browser/saved_state.py", "saved_state_other")
    backend = LocalBackend()
    samples: dict[tuple[int, int, str], list[float]] = {}
    for rep in range(args.reps):
        order = list(versions) if rep % 2 == 0 else list(reversed(versions))
        for size, origins in CASES:
            for name in order:
                try:
                    handle = backend.start(session_id=f"import-{name}", display=Display())
                except Exception as exc:  # a start that timed out on a busy machine: no sample
                    print(f"start failed: {exc}", flush=True)
                    continue
                try:
                    prepare_first_tab(handle.webdriver_url, handle.webdriver_session_id, Display())
                    time.sleep(1)
                    load = os.getloadavg()[0]
                    started = time.perf_counter()
                    versions[name].state_import(handle, make_state(size, origins), timeout=60)
                    ms = (time.perf_counter() - started) * 1000
                    samples.setdefault((size, origins, name), []).append(ms)
                    print(f"{size} B x {origins} origins, {name}: {ms:.0f} ms (load {load:.1f})", flush=True)
                except Exception as exc:
                    print(f"{size} B x {origins} origins, {name}: failed: {exc}", flush=True)
                finally:
                    backend.stop(handle, session_id=f"import-{name}")
    print("| state | version | median | samples |")
    print("|---|---|---|---|")
    for (size, origins, name), values in sorted(samples.items()):
        print(f"| {size} B x {origins} | {name} | {statistics.median(values):.0f} ms | {len(values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
