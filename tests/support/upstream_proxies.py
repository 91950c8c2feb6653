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
    server: socketserver.ThreadingTCPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def start(self) -> UpstreamProxy:
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
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
