"""WebSocket client: websocket-client's handshake and sending over a byte-counting socket; frames are read by
`ws_frames.FrameReader` (sans-I/O, one buffer for whatever a read returned).

websocket-client follows redirects by default, on sockets this client would not count, and has no size limit
of its own. So: a message longer than `ws_message_bytes` is refused from its frame headers, before its payload
is read; the handshake answer
must come within `head_timeout` and `http_head_bytes`; a frame must complete within `timeout` seconds of the
last one; and a redirect is an error. Each is a LimitExceeded, and the connection is then closed.
No Locust import here, so the orchestrating process can use it too: `open_check` and `send_check` are the ws
and chat transports' `rtcap check-target` hooks (loadtests/run/check.py drives them).
"""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING, Any

import websocket

from rtcap.targets.adapter_fields import parse_body
from rtcap.loadtests.transports.limits import DEFAULT_LIMITS, REDIRECT_STATUSES, LimitExceeded, Limits, redirect_error, size
from rtcap.loadtests.transports.netio import CountingSocket, open_counting_connection
from rtcap.loadtests.transports.ws_frames import BINARY, CLOSE, PING, READ_SIZE, TEXT, FrameReader

if TYPE_CHECKING:
    from rtcap.loadtests.transports.checking import Receiver
    from rtcap.targets.adapter import TargetAdapter
    from rtcap.targets.transports import Transport


class WebSocketClosed(Exception):
    """The server closed the WebSocket."""


class WebSocketClient:
    """One WebSocket connection whose bytes (handshake and frames) are counted at the socket."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 60.0,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.limits = limits
        self.sock: CountingSocket | None = None
        self.ws: websocket.WebSocket | None = None
        self.reader = FrameReader(limits.ws_message_bytes)
        self._read_at = 0.0
        self._silence = f"no complete WebSocket frame from {url} in {timeout:g} s"

    def connect(self) -> float:
        """Open the socket and complete the handshake; return its duration in milliseconds."""
        started = time.perf_counter()
        self.sock = sock = open_counting_connection(self.url, self.timeout)
        header = [f"{name}: {value}" for name, value in self.headers.items()]
        limits = self.limits
        # enable_multithread: the chatter's sender greenlet and the reader share the connection.
        self.ws = ws = websocket.WebSocket(enable_multithread=True)
        self.reader = FrameReader(limits.ws_message_bytes)
        ws.settimeout(self.timeout)
        sock.read_deadline(limits.head_timeout,
                           f"no WebSocket handshake answer from {self.url} within {limits.head_timeout:g} s")
        # The handshake is read byte by byte, so the budget stops at the answer (and any error body it has).
        sock.read_budget(limits.http_head_bytes,
                         f"WebSocket handshake answer from {self.url} longer than {size(limits.http_head_bytes)}")
        try:
            ws.connect(self.url, socket=sock, header=header, redirect_limit=0)
        except websocket.WebSocketException:
            answer = ws.handshake_response
            if answer is not None and answer.status in REDIRECT_STATUSES:
                raise redirect_error(answer.status, answer.headers.get("location"), self.url) from None
            raise
        sock.read_budget(None)
        self._expect_frame()
        return (time.perf_counter() - started) * 1000.0

    def _expect_frame(self) -> None:
        # Silence is measured in complete frames, not bytes: a byte trickled now and then keeps nothing alive.
        # (Read by an event loop, `take` has no socket deadline: its caller times the silence.)
        if self.sock is not None and self.sock.gettimeout() != 0.0:
            self.sock.read_deadline(self.timeout, self._silence)

    def receive(self) -> tuple[str, float, int]:
        """Block for the next text message; return it, its receive time (unix seconds: when the read that
        completed it returned) and the bytes its frames took on the wire. Pings are answered on the way."""
        assert self.sock is not None, "connect() first"
        while True:
            message = self._next_message()
            if message is not None:
                return message[0], self._read_at, message[1]
            data = self.sock.recv(READ_SIZE)
            if not data:
                raise websocket.WebSocketConnectionClosedException("Connection to remote host was lost.")
            self._read_at = time.time()
            self.reader.feed(data)

    def take(self, data: bytes) -> list[tuple[str, int]]:
        """Parse bytes read elsewhere (an event loop's callback): every text message they complete, with its
        wire bytes. b"" is the end of the connection. Never blocks on a read; pings are answered."""
        if not data:
            raise websocket.WebSocketConnectionClosedException("Connection to remote host was lost.")
        self.reader.feed(data)
        messages = []
        while (message := self._next_message()) is not None:
            messages.append(message)
        return messages

    def _next_message(self) -> tuple[str, int] | None:
        """The next complete text message in what was read, and its wire bytes; None until more is read."""
        assert self.ws is not None, "connect() first"
        while True:
            try:
                item = self.reader.next()
            except LimitExceeded:
                # The frame is refused from its header: a closing handshake would read on into its payload.
                self.abort()
                raise
            if item is None:
                return None
            self._expect_frame()
            opcode, payload, wire = item
            if opcode == TEXT:
                try:
                    return payload.decode("utf-8"), wire
                except UnicodeDecodeError as error:
                    raise websocket.WebSocketPayloadException(f"cannot decode text message: {error}") from None
            if opcode == BINARY:
                return payload.decode("utf-8"), wire
            if opcode == CLOSE:
                self.ws.send_close()
                raise WebSocketClosed(f"server closed {self.url}")
            if opcode == PING:
                self.ws.pong(payload)

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


def open_check(adapter: TargetAdapter, record: Transport, timeout: float, receiver: Receiver) -> float:
    """`rtcap check-target` for the feed and the chat room: one socket, messages handed to `receiver` as they
    come; return the handshake time in ms."""
    transport = record.name
    spec = adapter.transport(transport)
    values = {"channel": adapter.channel, "room": spec.room}
    client = receiver.client = WebSocketClient(adapter.url_for(transport, **values), headers=adapter.headers,
                                               timeout=timeout)
    connect_ms = client.connect()
    subscribe = spec.render_subscribe(**values)
    if subscribe is not None:
        client.send_text(subscribe)

    def read_ws() -> None:
        while True:
            text, received_at, _wire = client.receive()
            receiver.items.put((parse_body(text), received_at, None))
    receiver.run(read_ws)
    return connect_ms


def send_check(adapter: TargetAdapter, record: Transport, count: int, receiver: Receiver) -> None:
    """The chat room's check events: `count` of the adapter's chat messages, sent on the connection."""
    spec = adapter.transport(record.name)
    for n in range(1, count + 1):
        receiver.client.send_text(spec.render_send(n, 16, channel=adapter.channel, room=spec.room))
