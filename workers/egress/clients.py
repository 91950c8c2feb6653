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


def socket_owner(address: str, port: int) -> int | None:
    """The uid owning the local TCP socket bound to address:port, or None."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    candidates = {_kernel_hex(str(ip), port)}
    if ip.version == 4:  # a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d
        candidates.add(_kernel_hex(f"::ffff:{ip}", port))
    elif ip.ipv4_mapped is not None:
        candidates.add(_kernel_hex(str(ip.ipv4_mapped), port))
    for _ in range(3):  # a socket opened or closed mid-read can make the kernel skip entries
        for table in _TABLES:
            uid = _owner_in(table, candidates)
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


def _owner_in(table: Path, candidates: set[str]) -> int | None:
    try:
        lines = _read_table(table).splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 7 and fields[1] in candidates:
            try:
                return int(fields[7])
            except ValueError:
                return None
    return None


def client_key(peername: tuple[str, int] | tuple[str, int, int, int] | None) -> str:
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
        uid = socket_owner(address, port)
        if uid is not None:
            return f"uid:{uid}"
        # Not found (the peer already gone): a key no route or limit is shared with.
        return f"unknown:{address}:{port}"
    return address
