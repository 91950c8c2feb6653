"""A CONNECT-only upstream proxy of the tests' own, on loopback: it counts the tunnels it opens,
the bytes it carries and the Proxy-Authorization it was sent (tests/workers/test_egress_upstream.py,
tests/flows/test_proxies.py). Every target name is 127.0.0.1 to it."""

from __future__ import annotations

import base64
import contextlib
import socket
import socketserver
import threading
from dataclasses import dataclass, field


class _Server(socketserver.ThreadingTCPServer):
    # A pool proxy listens on a port named in ADVANCED_PROXY_URLS, again for each test.
    allow_reuse_address = True
    daemon_threads = True


@dataclass
class UpstreamProxy:
    """A CONNECT-only upstream proxy: every name is 127.0.0.1 to it; counts what it carried."""

    name: str
    host: str = "127.0.0.1"
    credentials: str = ""  # "user:pass" it requires, or none
    tunnels: list[str] = field(default_factory=list)
    auth_seen: list[str] = field(default_factory=list)
    carried: int = 0
    listen_port: int = 0  # 0: any free port
    protocol: str = "http"  # or "socks5" (RFC 1928, with RFC 1929 username/password)
    server: socketserver.ThreadingTCPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def start(self) -> UpstreamProxy:
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                if proxy.protocol == "socks5":
                    proxy._socks5(self.request)
                    return
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                lines = head.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
                method, authority, _ = lines[0].split(" ", 2)
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                proxy.auth_seen.append(headers.get("Proxy-Authorization", ""))
                if proxy.credentials:
                    expected = "Basic " + base64.b64encode(proxy.credentials.encode()).decode()
                    if headers.get("Proxy-Authorization") != expected:
                        self.request.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                        return
                assert method == "CONNECT"
                proxy.tunnels.append(authority)
                port = int(authority.rsplit(":", 1)[1])
                with socket.create_connection(("127.0.0.1", port), timeout=5) as upstream:
                    self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    proxy._splice(self.request, upstream)

        self.server = _Server((self.host, self.listen_port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def _socks5(self, sock: socket.socket) -> None:
        def exactly(n: int) -> bytes:
            data = b""
            while len(data) < n:
                chunk = sock.recv(n - len(data))
                if not chunk:
                    raise ConnectionError("closed")
                data += chunk
            return data

        version, count = exactly(2)
        methods = exactly(count)
        wanted = 2 if self.credentials else 0
        if version != 5 or wanted not in methods:
            sock.sendall(b"\x05\xff")
            return
        sock.sendall(bytes([5, wanted]))
        if wanted == 2:
            exactly(1)
            user = exactly(exactly(1)[0]).decode()
            password = exactly(exactly(1)[0]).decode()
            self.auth_seen.append(f"{user}:{password}")
            if f"{user}:{password}" != self.credentials:
                sock.sendall(b"\x01\x01")
                return
            sock.sendall(b"\x01\x00")
        else:
            self.auth_seen.append("")
        _, command, _, kind = exactly(4)
        if kind == 3:
            host = exactly(exactly(1)[0]).decode()
        else:
            host = socket.inet_ntop(
                socket.AF_INET if kind == 1 else socket.AF_INET6, exactly(4 if kind == 1 else 16)
            )
        port = int.from_bytes(exactly(2), "big")
        assert command == 1  # CONNECT
        self.tunnels.append(f"{host}:{port}")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as upstream:
            sock.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + port.to_bytes(2, "big"))
            self._splice(sock, upstream)

    def _splice(self, a: socket.socket, b: socket.socket) -> None:
        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    self.carried += len(data)
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

        other = threading.Thread(target=pipe, args=(b, a), daemon=True)
        other.start()
        pipe(a, b)
        other.join(timeout=5)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
