"""WebSocket client: websocket-client over a byte-counting socket, handshake and frames included.

No Locust import here, so the orchestrating process can use it too.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import websocket

from loadtests.netio import CountingSocket, open_counting_connection


class WebSocketClosed(Exception):
    """The server closed the WebSocket."""


class WebSocketClient:
    """One WebSocket connection whose bytes (handshake and frames) are counted at the socket."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.sock: CountingSocket | None = None
        self.ws: websocket.WebSocket | None = None

    def connect(self) -> float:
        """Open the socket and complete the handshake; return its duration in milliseconds."""
        started = time.perf_counter()
        self.sock = open_counting_connection(self.url, self.timeout)
        header = [f"{name}: {value}" for name, value in self.headers.items()]
        # enable_multithread: the chatter's sender greenlet and the reader share the connection.
        self.ws = websocket.create_connection(
            self.url, timeout=self.timeout, socket=self.sock, header=header, enable_multithread=True
        )
        return (time.perf_counter() - started) * 1000.0

    def receive(self) -> tuple[str, float, int]:
        """Block for the next text message; return it, its receive time (unix seconds) and its frame's bytes."""
        assert self.ws is not None, "connect() first"
        opcode, data = self.ws.recv_data()
        received_at = time.time()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise WebSocketClosed(f"server closed {self.url}")
        raw = data if isinstance(data, bytes) else data.encode("utf-8")
        # An unmasked server frame: 2 header bytes, plus 2 or 8 for the extended length.
        wire = len(raw) + (2 if len(raw) < 126 else 4 if len(raw) < 65536 else 10)
        return raw.decode("utf-8"), received_at, wire

    def send_json(self, message: dict[str, Any]) -> None:
        """Send one JSON text message."""
        self.send_text(json.dumps(message, separators=(",", ":")))

    def send_text(self, text: str) -> None:
        """Send one text message."""
        assert self.ws is not None, "connect() first"
        self.ws.send(text)

    @property
    def byte_counts(self) -> tuple[int, int]:
        """(bytes sent, bytes received) on this connection so far."""
        return (self.sock.bytes_sent, self.sock.bytes_received) if self.sock else (0, 0)

    def abort(self) -> None:
        """Close at once, without the closing handshake: a thread blocked reading this connection wakes with an
        error instead of holding the read lock that a handshake's close() would wait on forever."""
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer
        self.close()

    def close(self) -> None:
        """Close the connection (safe to call twice)."""
        try:
            if self.ws is not None:
                self.ws.close(timeout=0.5)
            elif self.sock is not None:
                self.sock.close()
        except (OSError, websocket.WebSocketException):
            pass
