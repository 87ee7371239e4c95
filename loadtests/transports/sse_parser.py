"""Sans-I/O parser for the Server-Sent Events wire format (WHATWG HTML, "event stream interpretation").

Its cost is linear in the bytes fed, however they are chunked: each byte is searched for a line break once
(a 10 MB event in 64 KiB chunks must not rescan the buffer from its start on every chunk), and what it holds
is bounded by its line and event limits, so an endless line cannot grow the generator's memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rtcap.loadtests.transports.limits import SSE_EVENT_BYTES, SSE_LINE_BYTES, LimitExceeded, size

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its data, type, last event id and the bytes its lines took on the wire."""

    data: str
    event: str = "message"
    id: str | None = None
    wire_bytes: int = 0


@dataclass(frozen=True)
class SSEComment:
    """A comment line (servers use them as heartbeats)."""

    text: str
    wire_bytes: int = 0


@dataclass(frozen=True)
class SSERetry:
    """A `retry:` field: the reconnection delay the server asks for, in milliseconds."""

    milliseconds: int
    wire_bytes: int = 0


@dataclass
class SSEParser:
    """Feed it the decoded body of a text/event-stream; it returns the events, comments and retry hints.

    A line longer than `max_line` bytes, or an event whose data lines (the incomplete line included) pass
    `max_event` bytes (line breaks not counted: a one-line event is as long as its line), raises LimitExceeded as soon as the bytes fed show it; the stream is then unusable
    (close its connection). Items completed earlier in the same chunk go with it: clients read chunks far
    smaller than the limits, so such an item could only share a chunk with a line that was nearly complete.
    """

    last_event_id: str | None = None
    max_line: int = SSE_LINE_BYTES
    max_event: int = SSE_EVENT_BYTES
    bytes_scanned: int = 0
    """Bytes searched for line breaks so far: each byte fed at most once, whatever the chunking (linear cost)."""
    _buffer: bytearray = field(default_factory=bytearray)
    _scanned: int = 0  # the buffer's first bytes already searched: they hold no line break
    _data: list[str] = field(default_factory=list)
    _event_bytes: int = 0  # bytes of the data lines (line breaks not counted) held for the event being built
    _event: str = ""
    _pending_bytes: int = 0
    _skip_lf: bool = False
    _started: bool = False

    def feed(self, chunk: bytes) -> list[SSEEvent | SSEComment | SSERetry]:
        """Parse as much of the stream as `chunk` completes; keep the rest for the next call."""
        out: list[SSEEvent | SSEComment | SSERetry] = []
        buf = self._buffer
        if self._skip_lf and chunk[:1] == b"\n":
            # The previous chunk ended with CR; this LF completes the same CRLF line break.
            self._pending_bytes += 1
            chunk = chunk[1:]
        self._skip_lf = False
        buf.extend(chunk)
        start = 0
        # Only the bytes after the last search can hold a line break: each byte is searched once.
        self.bytes_scanned += len(buf) - self._scanned
        for match in _LINE_BREAK.finditer(buf, self._scanned):
            end = match.end()
            if match.group() == b"\r" and end == len(buf):
                # A CR at the very end may be the first half of a CRLF split across chunks.
                self._skip_lf = True
            if match.start() - start > self.max_line:
                raise LimitExceeded(f"SSE line longer than {size(self.max_line)}")
            line = bytes(buf[start : match.start()])
            self._pending_bytes += end - start
            self._process_line(line, out)
            start = end
        del buf[:start]
        self._scanned = len(buf)
        # The incomplete line is held too: bound it now, not when (if ever) its line break comes.
        if len(buf) > self.max_line:
            raise LimitExceeded(f"SSE line longer than {size(self.max_line)} (no line break yet)")
        self._check_event(len(buf))
        return out

    def _check_event(self, incomplete: int) -> None:
        """Raise if the event's data lines, plus `incomplete` bytes of a line still coming, pass max_event."""
        if self._event_bytes + incomplete > self.max_event:
            raise LimitExceeded(f"SSE event larger than {size(self.max_event)}")

    def _process_line(self, raw: bytes, out: list[SSEEvent | SSEComment | SSERetry]) -> None:
        line = raw.decode("utf-8", errors="replace")
        if not self._started:
            # A UTF-8 byte order mark may open the stream and is not part of the first field name.
            self._started = True
            line = line.removeprefix("\ufeff")
        if line == "":
            self._dispatch(out)
            return
        if line.startswith(":"):
            out.append(SSEComment(line[1:].removeprefix(" "), self._take_bytes()))
            return
        name, sep, value = line.partition(":")
        if sep:
            value = value.removeprefix(" ")
        if name == "data":
            self._event_bytes += len(raw)
            self._check_event(0)
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                out.append(SSERetry(int(value), self._take_bytes()))
        # Any other field name is ignored, as the specification requires.

    def _take_bytes(self) -> int:
        taken, self._pending_bytes = self._pending_bytes, 0
        return taken

    def _dispatch(self, out: list[SSEEvent | SSEComment | SSERetry]) -> None:
        self._event_bytes = 0
        if not self._data:
            # A blank line with no data resets the event type and dispatches nothing.
            self._event = ""
            return
        out.append(
            SSEEvent(
                data="\n".join(self._data),
                event=self._event or "message",
                id=self.last_event_id,
                wire_bytes=self._take_bytes(),
            )
        )
        self._data = []
        self._event = ""
