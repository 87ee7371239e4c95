"""ChunkedDecoder (loadtests/transports/chunked.py) against h11 reading the same chunked bodies, and the held
response reader (held_http.py) taking it.

Each body is fed both ways in the same reads: whole, split in two at every byte, and in pieces of 1 to 7
bytes. Per read, the decoder's pieces (then, once it hands over, h11's events from the bytes it handed back,
read by a fresh h11 given the same head, as held_http.py does) must be h11's Data events, and the end of the
message, h11's errors (type, message, status hint) the same. Then SSE and NDJSON clients read scripted
servers with the decoder and with h11 alone (`decode_chunked = False`): the same items, errors and byte
counts, and the decoder must have read the body.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import h11
import pytest

from rtcap.loadtests.transports.chunked import PENDING_LINE_BYTES, ChunkedDecoder, CloseDelimited, HandToH11
from rtcap.loadtests.transports.limits import LimitExceeded, Limits
from rtcap.loadtests.transports.ndjson_client import NDJSONClient
from rtcap.loadtests.transports.sse_client import SSEClient, StreamClosed
from tests.loadtests.test_poll_fastpath import ScriptedServer

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
CLOSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: keep-alive\r\n\r\n"
"""nginx+nchan's SSE head: no Content-Length, no Transfer-Encoding, the body ends with the connection."""
MAX_LINE = 64 * 1024


def chunk(data: bytes, size: bytes | None = None) -> bytes:
    return (size if size is not None else b"%x" % len(data)) + b"\r\n" + data + b"\r\n"


EVENT = b'id: 7\ndata: {"seq": 7, "ts": 1764780000.5}\n\n'
BODIES: dict[str, tuple[bytes, bool]] = {
    # name: (body after the head, the connection ends after it)
    "one-chunk": (chunk(EVENT), False),
    "many-sizes": (chunk(b"a") + chunk(EVENT * 7) + chunk(b"\r\n\r\n") + chunk(b"x" * 300) + chunk(b"\r"), False),
    "hex-spellings": (chunk(b"0123456789", b"A") + chunk(b"z" * 26, b"1a") + chunk(b"q" * 5, b"00005"), False),
    "extensions": (chunk(b"hello", b"5;name=value") + chunk(b"world", b'5;a;b="q r"') + chunk(b"!", b"1;"), False),
    "trailing-whitespace": (chunk(b"hello", b"5 ") + chunk(b"world", b"5\t \t") + chunk(b"!", b"1;x=1 "), False),
    "last-chunk": (chunk(EVENT) + b"0\r\n\r\n", False),
    "last-chunk-extension": (chunk(EVENT) + b"0;done=1\r\n\r\n", False),
    "last-chunk-zeros": (chunk(EVENT) + b"000\r\n\r\n", False),
    "trailers": (chunk(EVENT) + b"0\r\nX-Checksum: 1\r\nY: two\r\n\r\n", False),
    "bad-trailer": (chunk(EVENT) + b"0\r\nnot a header\r\n\r\n", False),
    "bytes-after-end": (chunk(EVENT) + b"0\r\n\r\nHTTP/1.1 200 OK\r\n", False),
    "size-not-hex": (chunk(EVENT) + b"zz\r\n}\r\n", False),
    "size-negative": (chunk(EVENT) + b"-5\r\nhello\r\n", False),
    "size-empty": (chunk(EVENT) + b"\r\nhello\r\n", False),
    "size-leading-space": (chunk(EVENT) + b" 5\r\nhello\r\n", False),
    "size-0x": (chunk(EVENT) + b"0x5\r\nhello\r\n", False),
    "size-21-digits": (chunk(EVENT) + b"0" * 20 + b"5\r\nhello\r\n", False),
    "size-20-digits": (chunk(EVENT) + b"0" * 19 + b"5\r\nhello\r\n", False),
    "size-lf-only": (chunk(EVENT) + b"5\nhello\r\n", False),
    "size-cr-in-extension": (chunk(EVENT) + b"5;a\rb\r\nhello\r\n", False),
    "footer-missing": (chunk(EVENT)[:-2] + chunk(EVENT), False),
    "footer-lf-only": (chunk(EVENT)[:-1] + chunk(EVENT), False),
    "footer-cr-only": (chunk(EVENT)[:-1] + b"X", False),
    "footer-swapped": (chunk(EVENT)[:-2] + b"\n\r" + chunk(EVENT), False),
    "eof-in-data": (chunk(EVENT)[:20], True),
    "eof-before-footer": (chunk(EVENT)[:-2], True),
    "eof-in-footer": (chunk(EVENT)[:-1], True),
    "eof-at-boundary": (chunk(EVENT), True),
    "eof-in-size-line": (chunk(EVENT) + b"1f;ext", True),
    "eof-after-end": (chunk(EVENT) + b"0\r\n\r\n", True),
    "eof-in-trailers": (chunk(EVENT) + b"0\r\nX: 1\r\n", True),
    "long-extension": (chunk(b"hello", b"5;" + b"e" * (PENDING_LINE_BYTES + 50)) + chunk(EVENT), False),
    "incomplete-long-extension": (chunk(EVENT) + b"5;" + b"e" * (PENDING_LINE_BYTES + 50), False),
}
SMALL_LINE = 24
"""max_incomplete_event_size of the oversize cases: h11's 431 when an incomplete chunk-size line passes it."""
OVERSIZE: dict[str, tuple[bytes, bool]] = {
    "oversize-size-line": (chunk(EVENT) + b"5;" + b"x" * 40, False),
    "oversize-complete-size-line": (chunk(b"hello", b"5;" + b"x" * 40) + chunk(EVENT), False),
    "oversize-trailers": (chunk(EVENT) + b"0\r\nX-Long: " + b"t" * 40 + b"\r\n\r\n", False),
    "within-size-line": (chunk(b"hello", b"5;" + b"x" * 10) + chunk(EVENT), False),
}


def splits(body: bytes) -> Iterator[list[bytes]]:
    """The reads a body is fed in: whole, in two at every byte, in pieces of 1-7 bytes and of random sizes."""
    yield [body]
    for cut in range(1, len(body)):
        yield [body[:cut], body[cut:]]
    for size in range(1, 8):
        yield [body[at:at + size] for at in range(0, len(body), size)]
    rng = random.Random(len(body))
    for _ in range(5):
        reads, at = [], 0
        while at < len(body):
            step = rng.randint(1, 7)
            reads.append(body[at:at + step])
            at += step
        yield reads


def h11_at_body(max_line: int, head: bytes = HEAD) -> h11.Connection:
    http = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_line)
    http.send(h11.Request(method="GET", target="/sse", headers=[("Host", "example")]))
    http.send(h11.EndOfMessage())
    http.receive_data(head)
    assert isinstance(http.next_event(), h11.Response)
    return http


def h11_events(http: h11.Connection, out: list[Any]) -> bool:
    """Append h11's events from what it holds; False once the message ended or h11 refused it."""
    try:
        while (event := http.next_event()) is not h11.NEED_DATA:
            if isinstance(event, h11.Data):
                out.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                out.append(("end", list(event.headers)))
                return False
            else:
                out.append(("event", type(event).__name__))
                return False
    except h11.RemoteProtocolError as error:
        out.append(("error", type(error), str(error), error.error_status_hint))
        return False
    return True


def read_with_h11(reads: list[bytes], eof: bool, max_line: int, head: bytes = HEAD) -> list[list[Any]]:
    """What h11 alone makes of each read (the end of the connection as a last, empty read)."""
    http = h11_at_body(max_line, head)
    outcome: list[list[Any]] = []
    for data in reads + ([b""] if eof else []):
        outcome.append([])
        http.receive_data(data)
        if not h11_events(http, outcome[-1]):
            break
    return outcome


def read_with_decoder(reads: list[bytes], eof: bool, max_line: int,
                      head: bytes = HEAD) -> tuple[list[list[Any]], HandToH11 | None]:
    """The same with the decoder, h11 taking over what it hands back; and the hand-off, if any."""
    decoder = ChunkedDecoder(max_line) if head is HEAD else CloseDelimited()
    http: h11.Connection | None = None
    handed = None
    outcome: list[list[Any]] = []
    for data in reads + ([b""] if eof else []):
        outcome.append([])
        if http is None:
            outcome[-1] += decoder.feed(data, eof=not data)
            stop = decoder.stopped
            if stop is None:
                continue
            with pytest.raises(type(stop)):
                decoder.feed(b"more")  # stopped for good
            if not isinstance(stop, HandToH11):
                outcome[-1].append(("error", type(stop), str(stop), stop.error_status_hint))
                break
            handed, http = stop, h11_at_body(max_line, head)
            http.receive_data(bytes(stop.received))
            if stop.eof:
                http.receive_data(b"")
        else:
            http.receive_data(data)
        if not h11_events(http, outcome[-1]):
            break
    return outcome, handed


def compare(body: bytes, eof: bool, max_line: int) -> list[HandToH11 | None]:
    hand_offs = []
    for reads in splits(body):
        expected = read_with_h11(reads, eof, max_line)
        got, handed = read_with_decoder(reads, eof, max_line)
        assert got == expected, reads
        hand_offs.append(handed)
    return hand_offs


@pytest.mark.parametrize("name", sorted(BODIES))
def test_the_decoder_reads_what_h11_reads(name: str) -> None:
    body, eof = BODIES[name]
    compare(body, eof, MAX_LINE)


@pytest.mark.parametrize("name", sorted(OVERSIZE))
def test_chunk_size_lines_past_the_limit_fail_as_with_h11(name: str) -> None:
    body, eof = OVERSIZE[name]
    compare(body, eof, SMALL_LINE)
    whole = read_with_h11([body], eof, SMALL_LINE)[-1][-1]
    too_long = ("error", h11.RemoteProtocolError, "Receive buffer too long", 431)
    assert (whole == too_long) == (name == "oversize-size-line")


def test_plain_chunks_never_go_to_h11_and_the_last_one_does() -> None:
    body = BODIES["many-sizes"][0] + BODIES["extensions"][0] + BODIES["trailing-whitespace"][0]
    assert compare(body, False, MAX_LINE) == [None] * len(list(splits(body)))
    for handed in compare(body + b"0\r\nX: 1\r\n\r\n", False, MAX_LINE):
        assert handed is not None and not handed.eof and b"0\r\nX: 1\r\n\r\n".startswith(bytes(handed.received))


def test_what_the_decoder_refuses_itself_is_inside_a_chunk() -> None:
    decoder = ChunkedDecoder(MAX_LINE)
    assert decoder.feed(b"5\r\nhelloXY") == [b"hello"]
    assert isinstance(decoder.stopped, h11.RemoteProtocolError)
    assert str(decoder.stopped) == "malformed chunk footer: bytearray(b'XY') (expected b'\\r\\n')"
    decoder = ChunkedDecoder(MAX_LINE)
    assert decoder.feed(b"5\r\nhel") == [b"hel"] and decoder.stopped is None
    assert decoder.feed(b"", eof=True) == []
    assert "incomplete chunked read" in str(decoder.stopped)


@pytest.mark.parametrize("eof", [False, True])
def test_a_close_delimited_body_reads_as_with_h11(eof: bool) -> None:
    body = BODIES["many-sizes"][0] + b"0\r\n\r\n" + EVENT  # no framing here: all of it is data
    for reads in splits(body):
        got, handed = read_with_decoder(reads, eof, MAX_LINE, CLOSE_HEAD)
        assert got == read_with_h11(reads, eof, MAX_LINE, CLOSE_HEAD)
        assert (handed is not None) == eof
        assert got[0] == [reads[0]]


# -- the held response reader --------------------------------------------------------------------------------

SSE_EVENTS = [b"id: %d\ndata: {\"seq\": %d}\n\n" % (n, n) for n in range(1, 6)]
SSE_BODY = b"".join(map(chunk, SSE_EVENTS))
NDJSON_HEAD = HEAD.replace(b"text/event-stream", b"application/x-ndjson")
NDJSON_BODY = b"".join(chunk(b'{"seq": %d}\n' % n) + chunk(b"\n") for n in range(1, 6))
STREAMS: dict[str, tuple[type[SSEClient] | type[NDJSONClient], bytes]] = {
    "sse-end": (SSEClient, HEAD + SSE_BODY + b"0\r\n\r\n"),
    "sse-trailers": (SSEClient, HEAD + SSE_BODY + b"0\r\nX-Done: 1\r\n\r\n"),
    "sse-closed": (SSEClient, HEAD + SSE_BODY),
    "sse-closed-mid-chunk": (SSEClient, HEAD + SSE_BODY + b"40\r\ndata: 1"),
    "sse-bad-chunk": (SSEClient, HEAD + SSE_BODY + b"not-hex\r\n\r\n"),
    "sse-bad-footer": (SSEClient, HEAD + SSE_BODY[:-2] + b"XY" + SSE_BODY),
    "sse-huge-size-line": (SSEClient, HEAD + SSE_BODY + b"5;" + b"x" * 70_000),
    "sse-event-limit": (SSEClient, HEAD + chunk(b"data: " + b"e" * 3000 + b"\n\n") + SSE_BODY),
    "sse-1xx": (SSEClient, b"HTTP/1.1 100 Continue\r\n\r\n" + HEAD + SSE_BODY + b"0\r\n\r\n"),
    "sse-close-delimited": (SSEClient, CLOSE_HEAD + b"".join(SSE_EVENTS)),
    "sse-close-delimited-event-limit": (SSEClient, CLOSE_HEAD + b"data: " + b"e" * 3000 + b"\n\n"),
    "ndjson-end": (NDJSONClient, NDJSON_HEAD + NDJSON_BODY + b"0\r\n\r\n"),
    "ndjson-close-delimited": (NDJSONClient, NDJSON_HEAD.replace(b"Transfer-Encoding: chunked", b"X: y")
                               + b'{"seq": 1}\n\n{"seq": 2}\n'),
    "ndjson-closed": (NDJSONClient, NDJSON_HEAD + NDJSON_BODY),
}
LIMITS = Limits(sse_line_bytes=2048, sse_event_bytes=2048)


def read_stream(kind: type[SSEClient] | type[NDJSONClient], port: int, by_take: bool) -> dict[str, Any]:
    """Every item and the error that ended the stream, read by items() or (the crowd's way) by take()."""
    client = kind(f"http://127.0.0.1:{port}/stream", timeout=5.0, limits=LIMITS)
    client.connect()
    items: list[Any] = []
    try:
        if by_take:
            while True:
                assert client.sock is not None
                items += client.take(client.sock.recv(65536))
        else:
            for item, _received_at in client.items():
                items.append(item)
    except Exception as error:  # noqa: BLE001  (the error itself is what is compared)
        ended: tuple[Any, ...] = (type(error), str(error))
    client.close()
    return {"items": items, "ended": ended, "bytes": client.byte_counts, "fast": client.fast_reads}


@pytest.mark.parametrize("by_take", [False, True], ids=["items", "take"])
@pytest.mark.parametrize("name", sorted(STREAMS))
def test_held_responses_read_the_same_with_the_decoder(name: str, by_take: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    kind, answer = STREAMS[name]
    server = ScriptedServer(answer=answer, close=True)
    try:
        fast = read_stream(kind, server.port, by_take)
        with monkeypatch.context() as patch:
            patch.setattr(kind, "decode_chunked", False)
            slow = read_stream(kind, server.port, by_take)
    finally:
        server.stop()
    assert slow.pop("fast") == 0
    assert fast.pop("fast") >= 1, "the body did not go through ChunkedDecoder"
    assert fast == slow
    if name.endswith(("-end", "-trailers")) or (name.endswith(("-closed", "sse-close-delimited")) and not by_take):
        assert len(fast["items"]) == 5  # (take() loses the items of the read the connection ended in, as before)
        assert fast["ended"][0] in (StreamClosed, h11.RemoteProtocolError)
    if name == "sse-huge-size-line":
        assert fast["ended"] == (LimitExceeded, "HTTP chunk header longer than 64 KiB")


def test_a_content_length_stream_stays_with_h11() -> None:
    body = b"data: 1\n\n"
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    server = ScriptedServer(answer=answer, close=True)
    try:
        outcome = read_stream(SSEClient, server.port, by_take=False)
    finally:
        server.stop()
    assert outcome["fast"] == 0 and len(outcome["items"]) == 1 and outcome["ended"][0] is StreamClosed
