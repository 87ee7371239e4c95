"""NDJSON streaming client: one held HTTP/1.1 response (h11) over a byte-counting socket, one JSON object per line.

Servers answer a GET with `Content-Type: application/x-ndjson` and keep the (chunked) body open, writing one
JSON text per `\\n`-terminated line per event. `NDJSONParser` is the sans-I/O half (bytes in, complete lines
out); `NDJSONClient` the blocking half, a held response (loadtests/transports/held_http.py) with its limits:
no more than `timeout` seconds without a complete line (a blank keep-alive line counts), no line longer than
`sse_line_bytes` (`--max-message-bytes`, the limit of an SSE line).

No Locust import here, so the orchestrating process can use it too: `open_check` is the ndjson transport's
`rtcap check-target` hook.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rtcap.targets.adapter_fields import parse_body
from rtcap.loadtests.transports.held_http import HeldResponse, HeldResponseError, StreamClosed
from rtcap.loadtests.transports.limits import SSE_LINE_BYTES, LimitExceeded, size

if TYPE_CHECKING:
    from rtcap.loadtests.transports.checking import Receiver
    from rtcap.targets.adapter import TargetAdapter
    from rtcap.targets.transports import Transport

__all__ = ["MEDIA_TYPES", "NDJSONClient", "NDJSONConnectError", "NDJSONLine", "NDJSONParser", "StreamClosed",
           "open_check"]

MEDIA_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
                         "application/jsonlines", "application/json"})
"""Content types a line-delimited JSON stream is served as: the NDJSON and JSON Lines names, and plain
application/json, which streaming APIs such as Kubernetes watches and Docker events use for the same format."""

_BLANK = b" \t\r"
"""Bytes a keep-alive line may hold (JSON whitespace): such a line carries no value."""


@dataclass(frozen=True)
class NDJSONLine:
    """One complete non-blank line: its text without the line break, and the body bytes it took (its line break
    and the blank keep-alive lines just before it included; chunk framing is the socket count's business)."""

    data: bytes
    wire_bytes: int


class NDJSONParser:
    """Feed it the decoded body of an NDJSON stream; it returns the complete lines, oldest first.

    Lines end at `\\n` (a `\\r` before it is part of the line break); lines holding only whitespace are
    keep-alives, counted in `keepalives` and never returned. Each byte is searched for a line break once, however
    the body is chunked, and what it holds is bounded: a line longer than `max_line` bytes (line break not
    counted) raises LimitExceeded as soon as the bytes fed show it, complete or not, so an endless line cannot
    grow the generator's memory. The stream is then unusable (close its connection); lines completed earlier in
    the same chunk go with it, as with SSEParser.
    """

    def __init__(self, max_line: int = SSE_LINE_BYTES) -> None:
        self.max_line = max_line
        self.keepalives = 0
        """Blank lines seen so far: they keep a quiet stream alive."""
        self.bytes_scanned = 0
        """Bytes searched for line breaks so far: each byte fed at most once (linear cost)."""
        self._buffer = bytearray()
        self._scanned = 0  # the buffer's first bytes already searched: they hold no line break
        self._pending = 0  # bytes of keep-alive lines not yet attributed to a line

    @property
    def buffered(self) -> int:
        """Bytes held for the line still coming."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[NDJSONLine]:
        """Parse as much of the stream as `chunk` completes; keep the rest for the next call."""
        out: list[NDJSONLine] = []
        buf = self._buffer
        buf.extend(chunk)
        self.bytes_scanned += len(buf) - self._scanned
        start, pos = 0, self._scanned
        while (end := buf.find(b"\n", pos)) != -1:
            stop = end - 1 if end > start and buf[end - 1] == 0x0D else end  # CRLF: the CR is line break too
            if stop - start > self.max_line:
                raise LimitExceeded(f"NDJSON line longer than {size(self.max_line)}")
            self._pending += end + 1 - start
            line = bytes(buf[start:stop])
            start = pos = end + 1
            if not line.strip(_BLANK):
                self.keepalives += 1
                continue
            out.append(NDJSONLine(line, self._pending))
            self._pending = 0
        del buf[:start]
        self._scanned = len(buf)
        # The incomplete line is held too: bound it now, not when (if ever) its line break comes. A trailing CR
        # may be the first half of the CRLF that ends a line of exactly max_line bytes.
        if len(buf) - (1 if buf.endswith(b"\r") else 0) > self.max_line:
            raise LimitExceeded(f"NDJSON line longer than {size(self.max_line)} (no line break yet)")
        return out


class NDJSONConnectError(HeldResponseError):
    """The server did not answer with a 200 and a line-delimited JSON content type."""


class NDJSONClient(HeldResponse):
    """One NDJSON stream: `connect()` sends the request and reads the head, `items()` yields complete lines."""

    accept = "application/x-ndjson"
    what = "NDJSON line"
    connect_error = NDJSONConnectError

    def new_parser(self) -> NDJSONParser:
        """Lines held to the SSE line limit (both are --max-message-bytes)."""
        return NDJSONParser(max_line=self.limits.sse_line_bytes)

    def accepts(self, content_type: str) -> bool:
        """Any of MEDIA_TYPES."""
        return content_type.partition(";")[0].strip().lower() in MEDIA_TYPES

    def feed(self, data: bytes) -> tuple[list[NDJSONLine], bool]:
        """Complete lines; a blank keep-alive line shows life too."""
        keepalives = self.parser.keepalives
        lines = self.parser.feed(data)
        return lines, bool(lines) or self.parser.keepalives != keepalives

    def items(self) -> Iterator[tuple[NDJSONLine, float]]:
        """Yield each complete line with its receive time (unix seconds) until the stream ends."""
        return super().items()


def open_check(adapter: TargetAdapter, record: Transport, timeout: float, receiver: Receiver) -> float:
    """`rtcap check-target`: open the stream and hand each line's (message, receive time, None) to `receiver`,
    the message read as the SSE check reads `data:`; return the time to the response head in ms."""
    client = receiver.client = NDJSONClient(adapter.url_for(record.name), headers=adapter.headers, timeout=timeout)
    connect_ms = client.connect()

    def read_lines() -> None:
        for line, received_at in client.items():
            receiver.items.put((parse_body(line.data), received_at, None))
    receiver.run(read_lines)
    return connect_ms
