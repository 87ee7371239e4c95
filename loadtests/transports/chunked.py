"""A held response's chunked (or close-delimited) HTTP/1.1 body decoded as h11 decodes it, without h11's
state machine (sans-I/O; held_http.py does the reading).

Why: a held SSE or NDJSON response is a body that never ends, and h11 reads it one event at a time through
its state machine, building a Data event per chunk: 6.0 us of CPU per read of one SSE event in chunks (1.2 us
here), 3.6 us for a close-delimited one (0.07 us here). With `--held-per-user 50` SSE listeners against
nginx+nchan (bench/generator.py's crowd arm, 1,000-3,000 connections at 10 events/s) that was 24,500-25,700
events per CPU-second at 1,000 connections before, 34,000-35,000 after. The common body
(chunk-size lines, data, the CRLF after each chunk) is decoded here, a whole socket read per call, with h11's
own chunk-size pattern (`chunk_header_re`, imported below: pyproject.toml pins the h11 release it comes
from), and the pieces returned are the data of the Data events h11 would have produced from the same reads.

h11 stays the authority. Whatever is rare or unclear is not decided here but handed back to h11 at a chunk
boundary, where h11's chunked reader holds no state (HandToH11, with every byte from the start of that
chunk-size line): a line h11's pattern refuses, the last chunk and its trailers, a chunk-size line still
incomplete past PENDING_LINE_BYTES or h11's max_incomplete_event_size (h11 then raises its 431, which the
caller turns into LimitExceeded), the end of the connection there. Only what happens inside a chunk, where
h11 cannot take over, is decided here, with h11's error type and message: a chunk not followed by CRLF
("malformed chunk footer"), the connection ending inside a chunk ("incomplete chunked read").
tests/loadtests/test_chunked.py feeds both the same bytes, whole and split, and compares.

CloseDelimited is the same for a body without Content-Length or Transfer-Encoding, which ends when the
connection does: nginx+nchan serves its SSE streams so (the figures above are for such streams: h11 still ran
its state machine and built a Data event per read). Each read is one piece, as h11's Data events; the end of
the connection is handed to h11, which ends the message.
"""

from __future__ import annotations

import h11
from h11._readers import chunk_header_re

from rtcap.loadtests.transports.http_fast import HandToH11

__all__ = ["PENDING_LINE_BYTES", "ChunkedDecoder", "CloseDelimited", "HandToH11"]

PENDING_LINE_BYTES = 1024
"""An incomplete chunk-size line held between reads, at most (bytes): a longer one (long chunk extensions
trickled in) goes to h11, whose buffer searches it without copying it again on every read."""
_CRLF = b"\r\n"
_INCOMPLETE = ("peer closed connection without sending complete message body "
               "(incomplete chunked read)")
"""h11's ChunkedReader.read_eof message."""


class ChunkedDecoder:
    """Feed it the socket's reads of a chunked body (after the head); it returns the data of each chunk in
    them (a chunk split across reads comes in pieces, one per read, as h11's Data events do).

    When it stops, the pieces before the stop are returned and `stopped` holds why: a HandToH11 (h11 reads
    the rest of the body from `received`, the end of the connection after it if `eof`) or h11's
    RemoteProtocolError. The caller delivers the pieces, then acts on `stopped`; feeding it again raises it.
    `max_line` is h11's max_incomplete_event_size (the held response's `http_head_bytes`).
    """

    __slots__ = ("_discard", "_hold", "_in_chunk", "_pending", "stopped")

    def __init__(self, max_line: int) -> None:
        self._hold = min(max_line, PENDING_LINE_BYTES)
        self._pending = b""  # the start of a chunk-size line, held until its CRLF comes
        self._in_chunk = 0  # data bytes of the current chunk still to come
        self._discard = b""  # what is still to come of the CRLF after the current chunk's data
        self.stopped: HandToH11 | h11.RemoteProtocolError | None = None

    def feed(self, data: bytes, eof: bool = False) -> list[bytes]:
        """Decode one read (`eof`: the connection ended after it); the chunk data it completes or carries."""
        if self.stopped is not None:
            raise self.stopped
        if self._pending:
            data, self._pending = self._pending + data, b""
        pieces: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._in_chunk:
                stop = min(end, pos + self._in_chunk)
                pieces.append(data[pos:stop])
                self._in_chunk -= stop - pos
                pos = stop
                if not self._in_chunk:
                    self._discard = _CRLF
                continue
            if self._discard:
                # As h11: take at most what is still expected, compare, complain with what was there.
                got = data[pos:pos + len(self._discard)]
                if not self._discard.startswith(got):
                    self.stopped = h11.RemoteProtocolError(
                        f"malformed chunk footer: {bytearray(got)!r} (expected {self._discard!r})")
                    return pieces
                self._discard = self._discard[len(got):]
                pos += len(got)
                continue
            line_end = data.find(_CRLF, pos)
            if line_end == -1:
                if end - pos > self._hold:
                    return self._hand(pieces, data[pos:], eof)
                self._pending = data[pos:]
                break
            header = chunk_header_re.fullmatch(data, pos, line_end + 2)
            size = int(header["chunk_size"], 16) if header is not None else 0
            if not size:  # a line h11 refuses, or the last chunk: h11 reads it and what follows
                return self._hand(pieces, data[pos:], eof)
            self._in_chunk = size
            pos = line_end + 2
        if eof:
            if self._in_chunk or self._discard:
                self.stopped = h11.RemoteProtocolError(_INCOMPLETE)
            else:  # at a chunk boundary: h11 says what the end of the connection there means
                return self._hand(pieces, self._pending, eof)
        return pieces

    def _hand(self, pieces: list[bytes], rest: bytes, eof: bool) -> list[bytes]:
        self._pending = b""
        self.stopped = HandToH11(rest, eof)
        return pieces


class CloseDelimited:
    """The body of a response that ends with its connection (h11's "http/1.0" framing): each read is data,
    as h11's Data events are; the end of the connection (`eof`) is handed to h11 (HandToH11), which ends the
    message there. Same interface as ChunkedDecoder."""

    __slots__ = ("stopped",)

    def __init__(self) -> None:
        self.stopped: HandToH11 | None = None

    def feed(self, data: bytes, eof: bool = False) -> list[bytes]:
        """One read (`eof`: the connection ended after it): the data in it."""
        if self.stopped is not None:
            raise self.stopped
        if eof:
            self.stopped = HandToH11(b"", eof=True)
        return [data] if data else []
