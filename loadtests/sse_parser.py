"""Sans-I/O parser for the Server-Sent Events wire format (WHATWG HTML, "event stream interpretation")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
    """Feed it the decoded body of a text/event-stream; it returns the events, comments and retry hints."""

    last_event_id: str | None = None
    _buffer: bytearray = field(default_factory=bytearray)
    _data: list[str] = field(default_factory=list)
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
        for match in _LINE_BREAK.finditer(buf):
            end = match.end()
            if match.group() == b"\r" and end == len(buf):
                # A CR at the very end may be the first half of a CRLF split across chunks.
                self._skip_lf = True
            line = bytes(buf[start : match.start()])
            self._pending_bytes += end - start
            self._process_line(line, out)
            start = end
        del buf[:start]
        return out

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
