"""WebSocket client: websocket-client over a byte-counting socket, handshake and frames included.

websocket-client has no size limit of its own (it reads a frame's whole payload, whatever its header
announces) and follows redirects by default, on sockets this client would not count. So: a message longer
than `ws_message_bytes` is refused from its frame headers, before its payload is read; the handshake answer
must come within `head_timeout` and `http_head_bytes`; a frame must complete within `timeout` seconds of the
last one; and a redirect is an error. Each is a LimitExceeded, and the connection is then closed.
No Locust import here, so the orchestrating process can use it too: `open_check` and `send_check` are the ws
and chat transports' `rtcap check-target` hooks (loadtests/run/check.py drives them).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import websocket

from rtcap.targets.adapter_fields import parse_body
from rtcap.loadtests.transports.limits import DEFAULT_LIMITS, REDIRECT_STATUSES, LimitExceeded, Limits, redirect_error, size
from rtcap.loadtests.transports.netio import CountingSocket, open_counting_connection

if TYPE_CHECKING:
    from rtcap.loadtests.transports.checking import Receiver
    from rtcap.targets.adapter import TargetAdapter
    from rtcap.targets.transports import Transport

_DATA_OPCODES = (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_CONT)


class WebSocketClosed(Exception):
    """The server closed the WebSocket."""


class JoinedFragments(websocket.continuous_frame):
    """websocket-client's assembler of fragmented messages, appending to one buffer: its own makes new bytes
    of the message so far for every fragment, which is quadratic in a message's fragment count."""

    def __init__(self, fire_cont_frame: bool, skip_utf8_validation: bool) -> None:
        super().__init__(fire_cont_frame, skip_utf8_validation)
        self._message = bytearray()

    def add(self, frame: websocket.ABNF) -> None:
        """Append one more fragment to the current message."""
        if self.cont_data:
            self._message += frame.data
            if frame.fin:
                self.recving_frames = None
        else:
            super().add(frame)
            self._message = bytearray(frame.data)

    def extract(self, frame: websocket.ABNF) -> tuple:
        """The whole message."""
        if self.cont_data is not None:
            self.cont_data[1] = bytes(self._message)
            self._message = bytearray()
        return super().extract(frame)


class BoundedFrames(websocket.frame_buffer):
    """websocket-client's frame reader, refusing a message longer than `max_message` from the length in its
    frame headers (fragments summed), and calling `on_frame` after each complete frame."""

    def __init__(self, recv: Callable[[int], bytes], skip_utf8_validation: bool, max_message: int,
                 on_frame: Callable[[], None]) -> None:
        super().__init__(recv, skip_utf8_validation)
        self.max_message = max_message
        self.on_frame = on_frame
        self._message_bytes = 0  # payload of the fragmented message received so far

    def recv_length(self) -> None:
        """Read the frame's length, and refuse it before its payload if the message would be too long."""
        super().recv_length()
        fin, _rsv1, _rsv2, _rsv3, opcode = self.header[:5]
        total = (self._message_bytes if opcode == websocket.ABNF.OPCODE_CONT else 0) + self.length
        if total > self.max_message:
            raise LimitExceeded(f"WebSocket message larger than {size(self.max_message)}")
        if opcode in _DATA_OPCODES:  # control frames may come between fragments and are no part of them
            self._message_bytes = 0 if fin else total

    def recv_frame(self) -> websocket.ABNF:
        """Read one frame, then report it complete."""
        frame = super().recv_frame()
        self.on_frame()
        return frame


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

    def connect(self) -> float:
        """Open the socket and complete the handshake; return its duration in milliseconds."""
        started = time.perf_counter()
        self.sock = sock = open_counting_connection(self.url, self.timeout)
        header = [f"{name}: {value}" for name, value in self.headers.items()]
        limits = self.limits
        # enable_multithread: the chatter's sender greenlet and the reader share the connection.
        self.ws = ws = websocket.WebSocket(enable_multithread=True)
        plain = ws.frame_buffer
        ws.frame_buffer = BoundedFrames(plain.recv, plain.skip_utf8_validation, limits.ws_message_bytes,
                                        self._expect_frame)
        ws.cont_frame = JoinedFragments(ws.cont_frame.fire_cont_frame, ws.cont_frame.skip_utf8_validation)
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
        if self.sock is not None:
            self.sock.read_deadline(self.timeout, f"no complete WebSocket frame from {self.url} in {self.timeout:g} s")

    def receive(self) -> tuple[str, float, int]:
        """Block for the next text message; return it, its receive time (unix seconds) and its frame's bytes."""
        assert self.ws is not None, "connect() first"
        try:
            opcode, data = self.ws.recv_data()
        except LimitExceeded:
            # The frame reader stopped inside a frame: a closing handshake would read on into its payload.
            self.abort()
            raise
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
