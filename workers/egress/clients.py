"""Who a connection to the filter comes from: one key per browser, as far as the host can tell.

On a Grid (compose) each browser has a node, so a node's address is a browser. On a local host
every browser connects from 127.0.0.1, but each runs as its own leased uid
(workers/browser/sandbox.py): the kernel's socket table (/proc/net/tcp, tcp6) says which uid owns
the peer's end of a loopback connection, so the key is `uid:<n>`. A browser that runs as the
worker's own uid (no sandbox uid) shares that key with every other such browser.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def _kernel_hex(address: str, port: int) -> str:
    """How /proc/net/tcp{,6} writes an address:port (32-bit words in host order)."""
    ip = ipaddress.ip_address(address)
    packed = ip.packed if ip.version == 6 else socket.inet_aton(str(ip))
    words = [int.from_bytes(packed[i : i + 4], sys.byteorder) for i in range(0, len(packed), 4)]
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def _candidates(address: str, port: int) -> set[str] | None:
    """How the kernel may write address:port in its tables (an IPv4 peer of a dual-stack socket
    is ::ffff:a.b.c.d); None for an address that is not one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    candidates = {_kernel_hex(str(ip), port)}
    if ip.version == 4:
        candidates.add(_kernel_hex(f"::ffff:{ip}", port))
    elif ip.ipv4_mapped is not None:
        candidates.add(_kernel_hex(str(ip.ipv4_mapped), port))
    return candidates


# /proc/net/tcp's state column: a connection in TIME_WAIT (06) has lost its owner (uid 0).
_TIME_WAIT = "06"


def socket_owner(address: str, port: int, *, peer: tuple[str, int] | None = None) -> int | None:
    """The uid owning the local TCP socket bound to address:port, or None. With `peer` (the
    address:port at the other end: ours), only the socket of that very connection: one local
    port may be in several connections at once (to different peers, or one in TIME_WAIT whose
    owner reads as root), and the first one listed need not be the one asking."""
    local = _candidates(address, port)
    remote = _candidates(*peer) if peer is not None else None
    if local is None or (peer is not None and remote is None):
        return None
    for _ in range(3):  # a socket opened or closed mid-read can make the kernel skip entries
        for table in _TABLES:
            uid = _owner_in(table, local, remote)
            if uid is not None:
                return uid
    return None


def _read_table(table: Path) -> str:
    """The whole table in as few reads as the kernel allows (each read of a /proc/net file
    resumes by position, so reading it in small pieces while sockets come and go skips some)."""
    chunks = []
    fd = os.open(table, os.O_RDONLY)
    try:
        while chunk := os.read(fd, 1 << 22):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def _owner_in(table: Path, local: set[str], remote: set[str] | None) -> int | None:
    try:
        lines = _read_table(table).splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) <= 7 or fields[1] not in local or fields[3] == _TIME_WAIT:
            continue
        if remote is not None and fields[2] not in remote:
            continue
        try:
            return int(fields[7])
        except ValueError:
            return None
    return None


def client_key(
    peername: tuple[str, int] | tuple[str, int, int, int] | None,
    sockname: tuple[str, int] | tuple[str, int, int, int] | None = None,
) -> str:
    """Who a connection comes from; `sockname` (our end of it) makes a loopback peer's uid that
    of this very connection's socket."""
    if not peername:
        return ""
    address, port = str(peername[0]), int(peername[1])
    try:
        loopback = ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return address
    if address.startswith("::ffff:"):
        loopback = loopback or ipaddress.ip_address(address[7:]).is_loopback
    if loopback:
        ours = (str(sockname[0]), int(sockname[1])) if sockname else None
        uid = socket_owner(address, port, peer=ours)
        if uid is not None:
            return f"uid:{uid}"
        # Not found (the peer already gone): a key no route or limit is shared with.
        return f"unknown:{address}:{port}"
    return address
