"""Server-Sent Events client: one streaming HTTP/1.1 connection (h11) over a byte-counting socket.

No Locust import here, so the orchestrating process can use it too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import h11

from loadtests.netio import CountingSocket, open_counting_connection, split_url
from loadtests.sse_parser import SSEComment, SSEEvent, SSEParser, SSERetry


class SSEConnectError(Exception):
    """The server did not answer with a 200 text/event-stream."""


class StreamClosed(Exception):
    """The server ended the event stream."""


class SSEClient:
    """One SSE connection: `connect()` sends the request and reads the head, `items()` yields parsed items."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 60.0,
                 last_event_id: str | None = None) -> None:
        self.url = url
        self.last_event_id = last_event_id
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.sock: CountingSocket | None = None
        self.parser = SSEParser()
        self._http = h11.Connection(h11.CLIENT)
        self._body: list[bytes] = []

    @property
    def byte_counts(self) -> tuple[int, int]:
        """(bytes sent, bytes received) so far: request and response heads and chunk framing included."""
        return (self.sock.bytes_sent, self.sock.bytes_received) if self.sock else (0, 0)

    def connect(self) -> float:
        """Open the stream (sending Last-Event-ID if set); return milliseconds until the response head arrived."""
        last_event_id = self.last_event_id
        started = time.perf_counter()
        host, port, path, _secure = split_url(self.url)
        self.sock = open_counting_connection(self.url, self.timeout)
        headers = [("Host", f"{host}:{port}"), ("Accept", "text/event-stream"), ("Cache-Control", "no-cache")]
        headers += list(self.headers.items())
        if last_event_id is not None:
            headers.append(("Last-Event-ID", last_event_id))
            self.parser.last_event_id = last_event_id
        self.sock.sendall(self._http.send(h11.Request(method="GET", target=path, headers=headers)))
        self.sock.sendall(self._http.send(h11.EndOfMessage()))
        while True:
            event = self._next_http_event()
            if isinstance(event, h11.Response):
                break
        content_type = dict(event.headers).get(b"content-type", b"").decode("latin-1")
        if event.status_code != 200 or not content_type.startswith("text/event-stream"):
            raise SSEConnectError(f"HTTP {event.status_code} ({content_type or 'no content type'}) from {self.url}, "
                                 "expected 200 text/event-stream")
        return (time.perf_counter() - started) * 1000.0

    def items(self) -> Iterator[tuple[SSEEvent | SSEComment | SSERetry, float]]:
        """Yield each parsed item with its receive time (unix seconds) until the stream ends."""
        while True:
            event = self._next_http_event()
            if isinstance(event, h11.Data):
                received_at = time.time()
                for item in self.parser.feed(bytes(event.data)):
                    yield item, received_at
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                raise StreamClosed(f"server ended the stream from {self.url}")

    def _next_http_event(self) -> h11.Event:
        assert self.sock is not None, "connect() first"
        while True:
            event = self._http.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = self.sock.recv(65536)
            self._http.receive_data(data)
            if not data and self._http.their_state is not h11.DONE:
                raise StreamClosed(f"connection to {self.url} closed")

    def close(self) -> None:
        """Close the socket (safe to call twice)."""
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
