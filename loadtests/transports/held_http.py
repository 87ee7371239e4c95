"""A held HTTP/1.1 response read as a stream of items: what SSE and NDJSON clients share.

The client GETs a URL and the server keeps the (usually chunked) body open, writing items as they happen.
Everything but the wire format is the same for every such transport, so it lives here once: h11 over a
byte-counting socket (heads and chunk framing counted), the response head within `head_timeout` and
`http_head_bytes`, no redirect followed, the content type checked, then no more than `timeout` seconds without
a complete item however the server trickles its bytes. A subclass names its media type and its sans-I/O
parser. Each limit is a LimitExceeded (an OSError and a ValueError), which the listeners report as a broken
stream before reconnecting. No Locust import: the orchestrator's checks use these clients too.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import h11

from rtcap.loadtests.transports.http_client import READ_SIZE, next_h11_event
from rtcap.loadtests.transports.limits import DEFAULT_LIMITS, REDIRECT_STATUSES, Limits, redirect_error
from rtcap.loadtests.transports.netio import CountingSocket, open_counting_connection, split_url


class StreamClosed(Exception):
    """The server ended the stream."""


class HeldResponseError(Exception):
    """The server did not answer with a 200 and the stream's content type."""


class HeldResponse:
    """One held response: `connect()` sends the request and reads the head, `items()` yields parsed items."""

    accept = ""
    """The Accept header, and the content type the answer must have (see `accepts`)."""
    what = "item"
    """How silence is described: "no SSE event, comment or retry from URL in 60 s"."""
    connect_error: type[Exception] = HeldResponseError

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 60.0,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.limits = limits
        self.sock: CountingSocket | None = None
        self.parser = self.new_parser()
        self._http = h11.Connection(h11.CLIENT, max_incomplete_event_size=limits.http_head_bytes)
        self._silence: str | None = None
        self._ended = False

    def new_parser(self) -> Any:
        """The sans-I/O parser of the wire format: `feed(bytes) -> list of items`."""
        raise NotImplementedError

    def request_headers(self) -> list[tuple[str, str]]:
        """Headers of this request besides Host, Accept, Cache-Control and the adapter's."""
        return []

    def accepts(self, content_type: str) -> bool:
        """Whether a 200 with this Content-Type is the stream."""
        return content_type.partition(";")[0].strip().lower() == self.accept

    def feed(self, data: bytes) -> tuple[list[Any], bool]:
        """Parse `data`: the complete items, and whether the stream showed life (an item, or a keep-alive the
        format defines) that resets the silence timer."""
        items = self.parser.feed(data)
        return items, bool(items)

    @property
    def byte_counts(self) -> tuple[int, int]:
        """(bytes sent, bytes received) so far: request and response heads and chunk framing included."""
        return (self.sock.bytes_sent, self.sock.bytes_received) if self.sock else (0, 0)

    def connect(self) -> float:
        """Open the stream; return milliseconds until the response head arrived."""
        started = time.perf_counter()
        host, port, path, _secure = split_url(self.url)
        self.sock = open_counting_connection(self.url, self.timeout)
        headers = [("Host", f"{host}:{port}"), ("Accept", self.accept), ("Cache-Control", "no-cache")]
        headers += list(self.headers.items()) + self.request_headers()
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
        if event.status_code != 200 or not self.accepts(content_type):
            raise self.connect_error(f"HTTP {event.status_code} ({content_type or 'no content type'}) from "
                                     f"{self.url}, expected 200 {self.accept}")
        return (time.perf_counter() - started) * 1000.0

    def items(self) -> Iterator[tuple[Any, float]]:
        """Yield each parsed item with its receive time (unix seconds) until the stream ends."""
        while True:
            event = self._next_http_event()
            if isinstance(event, h11.Data):
                received_at = time.time()
                items, alive = self.feed(bytes(event.data))
                if alive:
                    self._expect_item()
                for item in items:
                    yield item, received_at
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                raise StreamClosed(f"server ended the stream from {self.url}")

    def take(self, data: bytes) -> list[Any]:
        """Parse bytes read elsewhere (an event loop's callback): the items they complete. b"" is the end of
        the connection; the end of the stream raises StreamClosed. Never blocks on a read."""
        assert self.sock is not None, "connect() first"
        ended = StreamClosed(f"server ended the stream from {self.url}")
        if self._ended:
            raise ended
        self._http.receive_data(data)
        items: list[Any] = []
        while True:
            event = next_h11_event(self._http, self.limits.http_head_bytes)
            if event is h11.NEED_DATA:
                return items
            if isinstance(event, h11.Data):
                items += self.feed(bytes(event.data))[0]
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                if not items:
                    raise ended
                self._ended = True  # the items before the end are delivered; the next call raises
                return items

    def _expect_item(self) -> None:
        # Silence is measured in complete items, not bytes: a byte trickled now and then keeps no stream alive.
        assert self.sock is not None
        if self._silence is None:  # formatted once: this runs for every chunk of the stream
            self._silence = f"no {self.what} from {self.url} in {self.timeout:g} s"
        self.sock.read_deadline(self.timeout, self._silence)

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

    def abort(self) -> None:
        """Close at once: a thread blocked reading this stream wakes (the read returns end of stream)."""
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed
        self.close()

    def close(self) -> None:
        """Close the socket (safe to call twice)."""
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
