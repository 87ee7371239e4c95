"""Sans-I/O reader of the frames a WebSocket server sends: bytes in, complete messages and control frames out.

Why not websocket-client's own reader: it reads every frame with two or three socket reads (header, extended
length, payload), builds an object per frame and validates UTF-8 in pure Python. Holding thousands of
connections, that was about a third of the load generator's CPU (py-spy on `WebSocketUser` against nginx+nchan,
bench/generator.py). This reader takes whatever one read returned (up to `READ_SIZE` bytes, often several
frames) and parses it in one buffer; text is checked by the UTF-8 codec, in C. websocket-client still does the
handshake, the sending (masking) and the closing handshake. wsproto, the well-kept sans-I/O alternative, would
also take over the handshake and sending that websocket-client already does, and builds an event object per
frame plus a frame-protocol state machine of its own: more per frame than this client needs to read.

The errors are websocket-client's (protocol, closed connection) and `LimitExceeded`, so callers, their
`stream_errors` and the hostile-server corpus see what they saw before. A message longer than `max_message`
is refused from its frame headers, fragments summed, before its payload is buffered.
"""

from __future__ import annotations

from websocket import WebSocketProtocolException

from rtcap.loadtests.transports.limits import LimitExceeded, size

READ_SIZE = 65536
"""The most one socket read takes."""

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = (CONT, TEXT, BINARY)
_KNOWN = frozenset((CONT, TEXT, BINARY, CLOSE, PING, PONG))


class FrameReader:
    """Parses a server's byte stream into `(opcode, payload, wire_bytes)`: whole messages (fragments joined, the
    opcode of the first fragment) and control frames, with the bytes their frames took on the wire."""

    __slots__ = ("_buffer", "_fragments", "_opcode", "_wire", "frames", "max_message")

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self.frames = 0
        """Frames completed so far (a deadline between complete frames is re-armed on this)."""
        self._buffer = bytearray()
        self._fragments: bytearray | None = None  # the fragmented message so far
        self._opcode = 0  # the opcode of the fragmented message
        self._wire = 0  # wire bytes of the fragmented message so far

    def feed(self, data: bytes) -> None:
        """Add bytes read from the socket."""
        self._buffer += data

    def next(self) -> tuple[int, bytes, int] | None:
        """The next complete message or control frame, or None until more bytes are fed."""
        buffer = self._buffer
        while True:
            have = len(buffer)
            if have < 2:
                return None
            first, second = buffer[0], buffer[1]
            if first & 0x70:
                raise WebSocketProtocolException(f"rsv bits set ({first & 0x70:#x}) but no extension was agreed")
            opcode = first & 0x0F
            if opcode not in _KNOWN:
                raise WebSocketProtocolException(f"Invalid opcode {opcode!r}")
            if second & 0x80:
                raise WebSocketProtocolException("a server must not mask its frames")
            length, head = second & 0x7F, 2
            if length == 126:
                if have < 4:
                    return None
                length, head = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if have < 10:
                    return None
                length, head = int.from_bytes(buffer[2:10], "big"), 10
            total = length + (len(self._fragments) if opcode == CONT and self._fragments is not None else 0)
            if total > self.max_message:
                raise LimitExceeded(f"WebSocket message larger than {size(self.max_message)}")
            fin = first & 0x80
            if opcode >= CLOSE and (not fin or length > 125):
                raise WebSocketProtocolException("a control frame must be whole and at most 125 bytes")
            end = head + length
            if have < end:
                return None
            payload = bytes(buffer[head:end])
            del buffer[:end]
            self.frames += 1
            if opcode >= CLOSE:
                return opcode, payload, end
            if opcode == CONT:
                if self._fragments is None:
                    raise WebSocketProtocolException("a continuation frame with no message to continue")
                self._fragments += payload
                self._wire += end
                if not fin:
                    continue
                message, wire = bytes(self._fragments), self._wire
                self._fragments = None
                return self._opcode, message, wire
            if self._fragments is not None:
                raise WebSocketProtocolException("a new message began before the fragmented one ended")
            if fin:
                return opcode, payload, end
            self._fragments, self._opcode, self._wire = bytearray(payload), opcode, end
