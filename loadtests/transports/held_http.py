"""A held HTTP/1.1 response read as a stream of items: what SSE and NDJSON clients share.

The client GETs a URL and the server keeps the (usually chunked) body open, writing items as they happen.
Everything but the wire format is the same for every such transport, so it lives here once: h11 over a
byte-counting socket (heads and chunk framing counted), the response head within `head_timeout` and
`http_head_bytes`, no redirect followed, the content type checked, then no more than `timeout` seconds without
a complete item however the server trickles its bytes. A subclass names its media type and its sans-I/O
parser. Each limit is a LimitExceeded (an OSError and a ValueError), which the listeners report as a broken
stream before reconnecting. No Locust import: the orchestrator's checks use these clients too.

h11 reads the head; a chunked body is then decoded by chunked.py's ChunkedDecoder, and one that ends with
the connection (nchan's SSE) by its CloseDelimited (why, and how they stay h11's decoding, is in chunked.py),
fed the same socket reads; whatever they hand back goes to h11 from that chunk boundary: a fresh h11
connection is given the request and the head as they were (kept for that), then the rest, so h11 decides it
as if it had read the whole body. A Content-Length body stays with h11.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import h11

from rtcap.loadtests.transports.chunked import ChunkedDecoder, CloseDelimited, HandToH11
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
    decode_chunked = True
    """Decode a chunked or close-delimited body here (False: all of it through h11, as before; tests compare)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 60.0,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.limits = limits
        self.sock: CountingSocket | None = None
        self.parser = self.new_parser()
        self._http: h11.Connection | None = self._new_h11()
        self._silence: str | None = None
        self._ended = False
        self._request: h11.Request | None = None
        self._head = b""  # the response head's bytes (1xx answers included), replayed if h11 takes over
        self._head_reads: list[bytes] | None = None
        self._chunked: ChunkedDecoder | CloseDelimited | None = None
        self._early = b""  # body bytes that came with the head, for the decoder
        self.fast_reads = 0
        """Socket reads of the body decoded by ChunkedDecoder or CloseDelimited (the rest went through h11)."""

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
        http = self._http
        assert http is not None
        self._request = h11.Request(method="GET", target=path, headers=headers)
        self.sock.sendall(http.send(self._request))
        self.sock.sendall(http.send(h11.EndOfMessage()))
        head_timeout = self.limits.head_timeout
        self.sock.read_deadline(head_timeout, f"no response head from {self.url} within {head_timeout:g} s")
        self._head_reads = []
        while True:
            event = self._next_http_event()
            if isinstance(event, h11.Response):
                break
        reads, self._head_reads = b"".join(self._head_reads), None
        self._expect_item()
        response_headers = dict(event.headers)
        if event.status_code in REDIRECT_STATUSES:
            location = response_headers.get(b"location", b"").decode("latin-1") or None
            raise redirect_error(event.status_code, location, self.url)
        content_type = response_headers.get(b"content-type", b"").decode("latin-1")
        if event.status_code != 200 or not self.accepts(content_type):
            raise self.connect_error(f"HTTP {event.status_code} ({content_type or 'no content type'}) from "
                                     f"{self.url}, expected 200 {self.accept}")
        # h11 frames a 200's body (RFC 7230 3.3.3) by Transfer-Encoding (it accepts only chunked), else by
        # Content-Length (kept with h11), else by the connection's end.
        if self.decode_chunked and http.their_state is h11.SEND_BODY:
            if b"transfer-encoding" in response_headers:
                self._chunked = ChunkedDecoder(self.limits.http_head_bytes)
            elif b"content-length" not in response_headers:
                self._chunked = CloseDelimited()
        if self._chunked is not None:
            self._early = http.trailing_data[0]
            self._head = reads[:len(reads) - len(self._early)]
            self._http = None  # a new one reads the body from a chunk boundary if the decoder hands it over
        return (time.perf_counter() - started) * 1000.0

    def items(self) -> Iterator[tuple[Any, float]]:
        """Yield each parsed item with its receive time (unix seconds) until the stream ends."""
        decoder = self._chunked
        if decoder is not None:
            assert self.sock is not None, "connect() first"
            data, self._early = self._early, b""
            while decoder.stopped is None:
                if not data:
                    data = self.sock.recv(READ_SIZE)
                    if not data:  # as `_next_http_event` says it, whatever the body's framing
                        raise StreamClosed(f"connection to {self.url} closed")
                self.fast_reads += 1
                pieces = decoder.feed(data)
                received_at = time.time()
                for piece in pieces:
                    items, alive = self.feed(piece)
                    if alive:
                        self._expect_item()
                    for item in items:
                        yield item, received_at
                data = b""
            self._hand_to_h11(decoder)
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
        if self._ended:
            raise StreamClosed(f"server ended the stream from {self.url}")
        items: list[Any] = []
        decoder = self._chunked
        if decoder is not None:
            eof = not data
            if self._early:
                data, self._early = self._early + data, b""
            self.fast_reads += 1
            for piece in decoder.feed(data, eof):
                items += self.feed(piece)[0]
            if decoder.stopped is None:
                return items
            self._hand_to_h11(decoder)
        else:
            assert self._http is not None
            self._http.receive_data(data)
        http = self._http
        assert http is not None
        while True:
            event = next_h11_event(http, self.limits.http_head_bytes)
            if event is h11.NEED_DATA:
                return items
            if isinstance(event, h11.Data):
                items += self.feed(bytes(event.data))[0]
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                if not items:
                    raise StreamClosed(f"server ended the stream from {self.url}")
                self._ended = True  # the items before the end are delivered; the next call raises
                return items

    def _new_h11(self) -> h11.Connection:
        return h11.Connection(h11.CLIENT, max_incomplete_event_size=self.limits.http_head_bytes)

    def _hand_to_h11(self, decoder: ChunkedDecoder | CloseDelimited) -> None:
        """Act on why the decoder stopped: raise its error, or give h11 the rest of the body (HandToH11) from
        the chunk boundary it stopped at, after the request and head it had (h11 reads the head again as it
        did, to the same Response: its chunked reader then starts as it would at that boundary)."""
        stop = decoder.stopped
        if not isinstance(stop, HandToH11):
            raise stop  # type: ignore[misc]  # h11's own error, as h11 raises it (and again if fed again)
        assert self._request is not None
        self._chunked = None
        http = self._new_h11()
        http.send(self._request)
        http.send(h11.EndOfMessage())
        http.receive_data(self._head)
        event = http.next_event()
        while not isinstance(event, h11.Response):  # 1xx answers before it, as the first time
            assert event is not h11.NEED_DATA, "the head h11 read is complete"
            event = http.next_event()
        http.receive_data(bytes(stop.received))
        if stop.eof:
            http.receive_data(b"")
        self._http = http

    def _expect_item(self) -> None:
        # Silence is measured in complete items, not bytes: a byte trickled now and then keeps no stream alive.
        assert self.sock is not None
        if self._silence is None:  # formatted once: this runs for every chunk of the stream
            self._silence = f"no {self.what} from {self.url} in {self.timeout:g} s"
        self.sock.read_deadline(self.timeout, self._silence)

    def _next_http_event(self) -> h11.Event:
        assert self.sock is not None, "connect() first"
        http = self._http
        assert http is not None
        while True:
            event = next_h11_event(http, self.limits.http_head_bytes)
            if event is not h11.NEED_DATA:
                return event
            data = self.sock.recv(READ_SIZE)
            if self._head_reads is not None:
                self._head_reads.append(data)
            http.receive_data(data)
            if not data and http.their_state is not h11.DONE:
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
