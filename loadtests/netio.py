"""Plain TCP connections that count every byte sent and received, so clients can report bytes on the wire."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit


class CountingSocket:
    """Wraps a connected socket; counts bytes through send/sendall/recv/recv_into and forwards everything else."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.bytes_sent = 0
        self.bytes_received = 0

    def send(self, data: bytes, *args: Any) -> int:
        """Send like socket.send and count what went out."""
        sent = self._sock.send(data, *args)
        self.bytes_sent += sent
        return sent

    def sendall(self, data: bytes, *args: Any) -> None:
        """Send all of `data` and count it."""
        self._sock.sendall(data, *args)
        self.bytes_sent += len(data)

    def recv(self, size: int, *args: Any) -> bytes:
        """Receive like socket.recv and count what came in."""
        data = self._sock.recv(size, *args)
        self.bytes_received += len(data)
        return data

    def recv_into(self, buffer: Any, size: int = 0, *args: Any) -> int:
        """Receive into a buffer and count what came in."""
        got = self._sock.recv_into(buffer, size, *args)
        self.bytes_received += got
        return got

    def __getattr__(self, name: str) -> Any:
        # settimeout, setsockopt, fileno, shutdown, close... behave exactly as the wrapped socket's.
        return getattr(self._sock, name)


def split_url(url: str) -> tuple[str, int, str, bool]:
    """Host, port, path-with-query and whether TLS is meant, from an http(s)/ws(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r} (use http, https, ws or wss)")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    secure = parts.scheme in ("https", "wss")
    port = parts.port or (443 if secure else 80)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return parts.hostname, port, path, secure


def open_counting_connection(url: str, timeout: float) -> CountingSocket:
    """Connect a TCP socket to the URL's host and port (TLS when the scheme says so), counting its bytes."""
    host, port, _path, secure = split_url(url)
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if secure:
        import ssl

        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    return CountingSocket(sock)


def websocket_url(base_url: str, path: str) -> str:
    """The ws:// (or wss://) URL for `path` on the server at an http(s) base URL."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {base_url!r}")
    return f"{scheme}://{parts.netloc}{path}"
