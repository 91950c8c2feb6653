"""Who a connection comes from: the egress filter's uid lookup against the host's socket count.

    bin/dev bench egress_client_lookup [--sockets 0,5000,20000] [--lookups 200]

The filter tells local browsers apart by the uid owning the peer's end of each new connection
(workers/egress/clients.py). It asks the kernel for that one connection by its four addresses
(sock_diag over netlink), or, where netlink is refused, reads the whole socket table
(/proc/net/tcp{,6}). The lookup runs on the filter's event loop, once per new connection, so its
cost is paid by every browser of the host. A busy host holds thousands of sockets, most of them
in TIME_WAIT (each closed connection stays there 60 s). For each `--sockets` count this makes
that many TIME_WAIT sockets on 127.0.0.1 (connect, accept, close), opens one live connection, and
times `--lookups` lookups of it each way. Loopback only; nothing else runs.

Prints a Markdown table and writes JSON to bench/results/egress_client_lookup.json.
"""

from __future__ import annotations

import argparse
import functools
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from harness import REPO as _REPO  # noqa: E402
from harness import loadavg, log, percentile, report_header, report_write  # noqa: E402

from workers.egress import clients  # noqa: E402


def _time_wait(server: socket.socket, count: int) -> None:
    """`count` more connections to `server`, closed client side first: TIME_WAIT on their ends."""
    for _ in range(count):
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        client.close()
        accepted.close()


def _table_size() -> int:
    return sum(len(table.read_text().splitlines()) - 1 for table in clients._TABLES)


def _proc_owner(local: set[str], remote: set[str]) -> int | None:
    """The lookup where netlink is refused: the tables in /proc, IPv4 then IPv6."""
    for table in clients._TABLES:
        uid = clients._owner_in(table, local, remote)
        if uid is not None:
            return uid
    return None


def _times(lookup: Callable[[], object], count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        lookup()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", default="0,5000,20000", help="TIME_WAIT sockets to add before each step")
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--output", type=Path, default=_REPO / "bench/results/egress_client_lookup.json")
    args = parser.parse_args()
    results = report_header("egress_client_lookup")
    results["steps"] = []
    rows = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1024)
        made = 0
        for target in sorted(int(n) for n in args.sockets.split(",")):
            _time_wait(server, target - made)
            made = target
            with socket.create_connection(server.getsockname()) as client:
                accepted, _ = server.accept()
                end, ours = client.getsockname(), server.getsockname()
                assert clients._diag_owner(end, ours) is not None
                local, remote = clients._candidates(*end), clients._candidates(*ours)
                assert local is not None and remote is not None
                netlink = _times(functools.partial(clients._diag_owner, end, ours), args.lookups)
                proc = _times(functools.partial(_proc_owner, local, remote), max(20, args.lookups // 10))
                accepted.close()
            step = {
                "time_wait_added": target,
                "table_lines": _table_size(),
                "netlink_ms": {"p50": statistics.median(netlink), "p99": percentile(netlink, 99)},
                "proc_ms": {"p50": statistics.median(proc), "p99": percentile(proc, 99)},
            }
            log(f"{target} TIME_WAIT: {step}")
            results["steps"].append(step)
            netlink_ms, proc_ms = step["netlink_ms"], step["proc_ms"]
            rows.append(
                f"| {target} | {step['table_lines']} | {netlink_ms['p50']:.3f} / {netlink_ms['p99']:.3f} "
                f"| {proc_ms['p50']:.2f} / {proc_ms['p99']:.2f} |"
            )
    results["loadavg_after"] = loadavg()
    text = "\n".join(
        [
            "| TIME_WAIT sockets added | lines in /proc/net/tcp{,6} "
            "| netlink p50 / p99 ms | /proc p50 / p99 ms |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    report_write(results, args.output, text)


if __name__ == "__main__":
    main()
