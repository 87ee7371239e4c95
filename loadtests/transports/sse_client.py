"""Server-Sent Events client: one streaming HTTP/1.1 connection (h11) over a byte-counting socket.

Its limits: the response head within `head_timeout` and `http_head_bytes`; then no more than `timeout`
seconds without a complete item (event, comment or retry), however the server trickles its bytes; lines and
events no longer than the parser's limits; no redirect followed. Each is a LimitExceeded (an OSError and a
ValueError), which the SSE listener reports as a broken stream before reconnecting.
No Locust import here, so the orchestrating process can use it too: `open_check` is the sse transport's
`rtcap check-target` hook (loadtests/run/check.py drives it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import h11

from rtcap.loadtests.generator.targeting import parse_body
from rtcap.loadtests.transports.http_client import READ_SIZE, next_h11_event
from rtcap.loadtests.transports.limits import DEFAULT_LIMITS, REDIRECT_STATUSES, Limits, redirect_error
from rtcap.loadtests.transports.netio import CountingSocket, open_counting_connection, split_url
from rtcap.loadtests.transports.sse_parser import SSEComment, SSEEvent, SSEParser, SSERetry

if TYPE_CHECKING:
    from rtcap.loadtests.transports.checking import Receiver
    from rtcap.targets.adapter import TargetAdapter
    from rtcap.targets.transports import Transport


class SSEConnectError(Exception):
    """The server did not answer with a 200 text/event-stream."""


class StreamClosed(Exception):
    """The server ended the event stream."""


class SSEClient:
    """One SSE connection: `connect()` sends the request and reads the head, `items()` yields parsed items."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 60.0,
                 last_event_id: str | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
        self.url = url
        self.last_event_id = last_event_id
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.limits = limits
        self.sock: CountingSocket | None = None
        self.parser = SSEParser(max_line=limits.sse_line_bytes, max_event=limits.sse_event_bytes)
        self._http = h11.Connection(h11.CLIENT, max_incomplete_event_size=limits.http_head_bytes)
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
        head_timeout = self.limits.head_timeout
        self.sock.read_deadline(head_timeout, f"no response head from {self.url} within {head_timeout:g} s")
        while True:
            event = self._next_http_event()
            if isinstance(event, h11.Response):
                break
        self._expect_item()
        response_headers = dict(event.headers)
        if event.status_code in REDIRECT_STATUSES:
            location = response_headers.get(b"location", b"").decode("latin-1") or None
            raise redirect_error(event.status_code, location, self.url)
        content_type = response_headers.get(b"content-type", b"").decode("latin-1")
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
                items = self.parser.feed(bytes(event.data))
                if items:
                    self._expect_item()
                for item in items:
                    yield item, received_at
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                raise StreamClosed(f"server ended the stream from {self.url}")

    def _expect_item(self) -> None:
        # Silence is measured in complete items, not bytes: a byte trickled now and then keeps no stream alive.
        assert self.sock is not None
        self.sock.read_deadline(self.timeout, f"no SSE event, comment or retry from {self.url} in {self.timeout:g} s")

    def _next_http_event(self) -> h11.Event:
        assert self.sock is not None, "connect() first"
        while True:
            event = next_h11_event(self._http, self.limits.http_head_bytes)
            if event is not h11.NEED_DATA:
                return event
            data = self.sock.recv(READ_SIZE)
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


def open_check(adapter: TargetAdapter, record: Transport, timeout: float, receiver: Receiver) -> float:
    """`rtcap check-target`: open the stream and hand each event's (message, receive time, id) to `receiver`;
    return the time to the response head in ms."""
    client = receiver.client = SSEClient(adapter.url_for(record.name), headers=adapter.headers, timeout=timeout)
    connect_ms = client.connect()

    def read_sse() -> None:
        for item, received_at in client.items():
            if isinstance(item, SSEEvent):
                receiver.items.put((parse_body(item.data), received_at, item.id))
    receiver.run(read_sse)
    return connect_ms
