"""Who a connection to the filter comes from: one key per browser, as far as the host can tell.

On a Grid (compose) each browser has a node, so a node's address is a browser. On a local host
every browser connects from 127.0.0.1, but each runs as its own leased uid
(workers/browser/sandbox.py): the kernel says which uid owns the peer's end of a loopback
connection (sock_diag over netlink, else the socket tables /proc/net/tcp, tcp6), so the key is
`uid:<n>`. A browser that runs as the
worker's own uid (no sandbox uid) shares that key with every other such browser.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
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


# The kernel's socket diagnostics over netlink (linux/sock_diag.h, linux/inet_diag.h): one
# connection looked up by its four addresses, in its hash table, whatever the table's size.
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_TCP_TIME_WAIT = 6
_NO_COOKIE = 0xFFFFFFFF


def _sockid(family: int, local: tuple[str, int], remote: tuple[str, int]) -> bytes:
    """struct inet_diag_sockid: ports and addresses in network order, no interface, no cookie."""

    def packed(address: str) -> bytes:
        return socket.inet_pton(family, address).ljust(16, b"\0")

    return (
        struct.pack("!HH", local[1], remote[1])
        + packed(local[0])
        + packed(remote[0])
        + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
    )


def _diag_owner(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The uid of the TCP connection local -> remote by an exact netlink lookup; None when there
    is no such live connection (or it is in TIME_WAIT). OSError when netlink cannot be used."""
    mapped = [ipaddress.ip_address(a.split("%", 1)[0]) for a in (local[0], remote[0])]
    plain = [ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip for ip in mapped]
    family = socket.AF_INET if all(ip.version == 4 for ip in plain) else socket.AF_INET6
    addresses = [str(ip) for ip in (plain if family == socket.AF_INET else mapped)]
    request = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF) + _sockid(
        family, (addresses[0], local[1]), (addresses[1], remote[1])
    )
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.sendto(header + request, (0, 0))
        reply = nl.recv(65536)
    length, kind = struct.unpack_from("=IH", reply)
    if kind == _NLMSG_ERROR:
        errno = -struct.unpack_from("=i", reply, 16)[0]
        if errno in (2, 0):  # ENOENT: no such connection
            return None
        raise OSError(errno, "sock_diag lookup failed")
    if kind != _SOCK_DIAG_BY_FAMILY or length < 16 + 72:
        raise OSError("sock_diag answered something else")
    state = reply[17]
    uid = struct.unpack_from("=I", reply, 16 + 64)[0]
    return None if state == _TCP_TIME_WAIT else int(uid)


_diag_usable = True


def socket_owner(address: str, port: int, *, peer: tuple[str, int] | None = None) -> int | None:
    """The uid owning the local TCP socket bound to address:port, or None. With `peer` (the
    address:port at the other end: ours), only the socket of that very connection: one local
    port may be in several connections at once (to different peers, or one in TIME_WAIT whose
    owner reads as root), and the first one listed need not be the one asking.

    With `peer`, asked of the kernel by netlink (one lookup in its hash table: ~0.1 ms whatever
    the number of sockets); where netlink is refused (a restricted container), read from
    /proc/net/tcp{,6} (the whole table: ~10 ms at 14,000 sockets in TIME_WAIT)."""
    global _diag_usable
    if peer is not None and _diag_usable:
        try:
            return _diag_owner((address, port), peer)
        except ValueError:
            return None
        except OSError:
            _diag_usable = False  # once: the table from now on
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
