"""Plain TCP connections that count every byte sent and received, so clients can report bytes on the wire,
and that can bound how long and how much their reads may take."""

from __future__ import annotations

import itertools
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from rtcap.loadtests.transports.limits import LimitExceeded, TimeLimitExceeded

DEADLINE_SLACK_S = 0.01
"""How far past its deadline a read may end (so that not every read has to re-arm the socket's timeout)."""


class CountingSocket:
    """Wraps a connected socket; counts bytes through send/sendall/recv/recv_into and forwards everything else.

    It can also bound what reads may take, for clients whose reads happen inside a library (websocket-client
    reads the handshake byte by byte and frames as it likes): `read_deadline` makes reads fail once a time
    has passed, even if the peer trickles a byte before every socket timeout; `read_budget` makes them fail
    once more than a number of bytes came in, reading no byte past it.
    """

    __slots__ = ("_armed", "_budget", "_budget_message", "_deadline", "_deadline_bound", "_deadline_message", "_sock",
                 "_timeout", "bytes_received", "bytes_sent")  # one per held connection: no __dict__

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.bytes_sent = 0
        self.bytes_received = 0
        self._timeout = sock.gettimeout()  # the timeout of each socket operation, as the caller set it
        self._armed = self._timeout  # the timeout set on the socket now (shorter near a deadline)
        self._deadline: float | None = None
        self._deadline_message = ""
        self._deadline_bound = False  # the deadline, not the operation timeout, bounds the current read
        self._budget: int | None = None
        self._budget_message = ""

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
        size = self._before_read(size)
        try:
            data = self._sock.recv(size, *args)
        except TimeoutError:
            self._after_timeout()
            raise
        self.bytes_received += len(data)
        self._after_read(len(data))
        return data

    def recv_ready(self, size: int) -> bytes | None:
        """What is waiting now, counted, or None when nothing is (the socket must be non-blocking: an event
        loop's callback reads with this). A plain TCP socket is read underneath gevent's wrapper, which only
        adds the wait a callback never does; TLS goes through its wrapper."""
        raw = self._sock if isinstance(self._sock, ssl.SSLSocket) else getattr(self._sock, "_sock", self._sock)
        try:
            data = raw.recv(size)
        except BlockingIOError:
            return None
        self.bytes_received += len(data)
        return data

    def recv_into(self, buffer: Any, size: int = 0, *args: Any) -> int:
        """Receive into a buffer and count what came in."""
        size = self._before_read(size or len(buffer))
        try:
            got = self._sock.recv_into(buffer, size, *args)
        except TimeoutError:
            self._after_timeout()
            raise
        self.bytes_received += got
        self._after_read(got)
        return got

    def settimeout(self, timeout: float | None) -> None:
        """Set the timeout of each socket operation (read deadlines may shorten it for one read)."""
        self._timeout = self._armed = timeout
        self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        """The timeout of each socket operation, as last set (not as shortened for a read near a deadline)."""
        return self._timeout

    def read_deadline(self, seconds: float | None, message: str = "") -> None:
        """From now on, reads fail with TimeLimitExceeded(message) once `seconds` have passed (None: only the
        timeout of each operation applies). Sends share the socket's timeout, so they may get the (shorter)
        time left before the deadline of the last read; a connection that slow is as good as dead anyway."""
        self._deadline = None if seconds is None else time.monotonic() + seconds
        self._deadline_message = message

    def read_budget(self, max_bytes: int | None, message: str = "") -> None:
        """From now on, reads fail with LimitExceeded(message) once more than `max_bytes` came in (None: no
        budget). No byte past the budget is read from the socket."""
        self._budget = max_bytes
        self._budget_message = message

    def _before_read(self, size: int) -> int:
        if self._deadline is not None:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeLimitExceeded(self._deadline_message)
            self._deadline_bound = self._timeout is None or remaining <= self._timeout
            wanted = remaining if self._deadline_bound else self._timeout
            # Setting a timeout is a system call: keep the armed one while it overshoots by DEADLINE_SLACK_S at most
            # (websocket-client reads a handshake one byte per call).
            if self._armed is None or not 0 <= self._armed - wanted <= DEADLINE_SLACK_S:
                self._arm(wanted)
        elif self._armed != self._timeout:
            self._arm(self._timeout)
        if self._budget is not None:
            size = min(size, self._budget + 1)  # one byte past the budget proves it broken
        return size

    def _arm(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)
        self._armed = timeout

    def _after_timeout(self) -> None:
        if self._deadline is not None and self._deadline_bound:
            raise TimeLimitExceeded(self._deadline_message) from None

    def _after_read(self, got: int) -> None:
        if self._budget is not None:
            self._budget -= got
            if self._budget < 0:
                raise LimitExceeded(self._budget_message)

    def __getattr__(self, name: str) -> Any:
        # setsockopt, fileno, shutdown, close... behave exactly as the wrapped socket's.
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


_sources: tuple[str, ...] = ()
_next_source = itertools.count()


def use_source_addresses(addresses: Iterable[str]) -> None:
    """Open this process's connections from these local addresses, round robin (none: the kernel picks): each
    address has its own ephemeral ports, ~28k by default (loadtests/run/oslimits.py)."""
    global _sources
    _sources = tuple(addresses)


def open_counting_connection(url: str, timeout: float) -> CountingSocket:
    """Connect a TCP socket to the URL's host and port (TLS when the scheme says so), counting its bytes."""
    host, port, _path, secure = split_url(url)
    source = (_sources[next(_next_source) % len(_sources)], 0) if _sources else None
    sock = socket.create_connection((host, port), timeout=timeout, source_address=source)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if secure:
        import ssl

        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    return CountingSocket(sock)
