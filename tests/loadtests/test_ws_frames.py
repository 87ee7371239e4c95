"""The sans-I/O WebSocket frame reader: fed bytes in any split, it yields whole messages and control frames,
refuses what a server must not send, and refuses a message past the limit from its headers."""

from __future__ import annotations

import os

import pytest
import websocket
from websocket import ABNF

from rtcap.loadtests.transports.limits import LimitExceeded
from rtcap.loadtests.transports.ws_frames import BINARY, CLOSE, PING, TEXT, FrameReader


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A server frame (unmasked), encoded by websocket-client itself."""
    return ABNF(fin=int(fin), opcode=opcode, mask_value=False, data=payload).format()


def read_all(reader: FrameReader, data: bytes, chunk: int) -> list[tuple[int, bytes, int]]:
    out = []
    for start in range(0, len(data), chunk):
        reader.feed(data[start:start + chunk])
        while (item := reader.next()) is not None:
            out.append(item)
    return out


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 125, 4096, 1 << 20])
def test_messages_of_every_length_form_come_out_whole_whatever_the_read_sizes(chunk: int) -> None:
    payloads = [b"", b"x", os.urandom(125), os.urandom(126), os.urandom(65535), os.urandom(65536), os.urandom(70000)]
    stream = b"".join(frame(TEXT if i % 2 else BINARY, p) for i, p in enumerate(payloads))
    got = read_all(FrameReader(1 << 20), stream, chunk)
    assert [p for _op, p, _wire in got] == payloads
    assert [op for op, _p, _wire in got] == [TEXT if i % 2 else BINARY for i in range(len(payloads))]
    # The wire bytes are the frames' exact sizes: 2, 4 or 10 header bytes plus the payload.
    assert [wire for _op, _p, wire in got] == [len(frame(TEXT, p)) for p in payloads]
    assert sum(wire for _op, _p, wire in got) == len(stream)


def test_fragments_are_joined_and_a_ping_between_them_comes_out_alone() -> None:
    stream = (frame(TEXT, b"hel", fin=False) + frame(PING, b"?") + frame(0, b"lo ", fin=False)
              + frame(0, b"world") + frame(CLOSE, b"\x03\xe8"))
    reader = FrameReader(1024)
    got = read_all(reader, stream, 5)
    assert [(op, p) for op, p, _wire in got] == [(PING, b"?"), (TEXT, b"hello world"), (CLOSE, b"\x03\xe8")]
    assert got[1][2] == len(frame(TEXT, b"hel", fin=False) + frame(0, b"lo ", fin=False) + frame(0, b"world"))
    assert reader.frames == 5


def test_a_message_past_the_limit_is_refused_from_its_header_fragments_summed() -> None:
    reader = FrameReader(1024)
    reader.feed(frame(TEXT, b"a" * 2000)[:4])  # the header alone is enough to refuse it
    with pytest.raises(LimitExceeded, match="WebSocket message larger than 1 KiB"):
        reader.next()
    reader = FrameReader(1024)
    first = frame(TEXT, b"a" * 600, fin=False)
    reader.feed(first + frame(0, b"a" * 600)[:4])
    with pytest.raises(LimitExceeded, match="WebSocket message larger than 1 KiB"):
        reader.next()


@pytest.mark.parametrize("raw, match", [
    (bytes([0x80 | 0x40 | TEXT, 1]) + b"x", "rsv"),
    (bytes([0x80 | 0x3, 1]) + b"x", "Invalid opcode 3"),
    (bytes([0x80 | TEXT, 0x80 | 1]) + b"mask" + b"x", "must not mask"),
    (frame(PING, b"x", fin=False), "control frame"),
    (bytes([0x80 | PING, 126, 0, 126]) + b"p" * 126, "control frame"),
    (frame(0, b"x"), "no message to continue"),
    (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), "new message began"),
])
def test_what_a_server_must_not_send_is_a_protocol_error(raw: bytes, match: str) -> None:
    with pytest.raises(websocket.WebSocketProtocolException, match=match):
        read_all(FrameReader(1024), raw, len(raw))


def test_an_incomplete_frame_waits_for_more_bytes_and_keeps_nothing_else() -> None:
    reader = FrameReader(1 << 20)
    data = frame(TEXT, b"y" * 300)
    reader.feed(data[:3])
    assert reader.next() is None
    reader.feed(data[3:-1])
    assert reader.next() is None and reader.frames == 0
    reader.feed(data[-1:])
    assert reader.next() == (TEXT, b"y" * 300, len(data)) and reader.frames == 1
    assert reader.next() is None
