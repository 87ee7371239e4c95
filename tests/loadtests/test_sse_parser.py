"""The SSE parser, fed bytes the way a socket delivers them."""

import time

import pytest

from rtcap.loadtests.transports.limits import MIB, SSE_LINE_BYTES, LimitExceeded
from rtcap.loadtests.transports.sse_parser import SSEComment, SSEEvent, SSEParser, SSERetry


def feed_all(parser: SSEParser, *chunks: bytes) -> list:
    out = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out


def test_event_with_id_and_data() -> None:
    items = SSEParser().feed(b'id: 7\ndata: {"seq": 7}\n\n')
    assert items == [SSEEvent(data='{"seq": 7}', id="7", wire_bytes=len(b'id: 7\ndata: {"seq": 7}\n\n'))]


def test_multiline_data_joined_with_newline_and_event_type() -> None:
    (event,) = SSEParser().feed(b"event: tick\ndata: a\ndata: b\n\n")
    assert (event.event, event.data) == ("tick", "a\nb")


def test_every_line_ending_style() -> None:
    for sep in (b"\n", b"\r", b"\r\n"):
        items = SSEParser().feed(b"data: x" + sep + sep)
        assert [i.data for i in items] == ["x"], sep


def test_crlf_split_across_chunks_is_one_line_break() -> None:
    parser = SSEParser()
    items = feed_all(parser, b"data: x\r", b"\n\r", b"\n", b"data: y\r\n\r\n")
    assert [i.data for i in items] == ["x", "y"]
    # A LF that completes a CRLF in the next chunk is counted with the next item: no byte is lost.
    assert sum(i.wire_bytes for i in items) == len(b"data: x\r\n\r\ndata: y\r\n\r\n")


def test_byte_by_byte_feeding_gives_the_same_events() -> None:
    stream = b'retry: 3000\n\n: hb\n\nid: 1\ndata: one\n\nid: 2\ndata: two\n\n'
    parser = SSEParser()
    items = feed_all(parser, *(stream[i : i + 1] for i in range(len(stream))))
    assert items == SSEParser().feed(stream)
    assert [type(i) for i in items] == [SSERetry, SSEComment, SSEEvent, SSEEvent]
    assert items[0].milliseconds == 3000
    assert items[1].text == "hb"
    assert sum(i.wire_bytes for i in items) == len(stream)


def test_incomplete_event_waits_for_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: partial") == []
    assert parser.feed(b"\n") == []
    assert [e.data for e in parser.feed(b"\n")] == ["partial"]


def test_last_event_id_persists_and_nul_ids_are_ignored() -> None:
    parser = SSEParser()
    first, second = parser.feed(b"id: 5\ndata: a\n\ndata: b\n\n")
    assert (first.id, second.id) == ("5", "5")
    (third,) = parser.feed(b"id: bad\x00id\ndata: c\n\n")
    assert third.id == "5"


def test_field_without_colon_and_unknown_fields_are_ignored() -> None:
    items = SSEParser().feed(b"data\nfoo: bar\n\n")
    assert [e.data for e in items] == [""]


def test_blank_line_without_data_dispatches_nothing() -> None:
    assert SSEParser().feed(b"event: x\n\n") == []


def test_bad_retry_is_ignored_and_bom_is_stripped() -> None:
    items = SSEParser().feed(b"\xef\xbb\xbfretry: 12a\ndata: ok\n\n")
    assert [type(i) for i in items] == [SSEEvent]


def event_of(size: int) -> bytes:
    """One event whose single data line is `size` bytes on the wire, line break included."""
    return b"data: " + b"x" * (size - len(b"data: \n")) + b"\n\n"


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_each_byte_is_searched_for_a_line_break_once_whatever_the_chunking() -> None:
    stream = event_of(2 * MIB) + b'id: 1\ndata: {"seq": 1}\n\n' * 100
    for size in (1024, 65536, len(stream)):
        parser = SSEParser(max_line=4 * MIB, max_event=4 * MIB)
        items = feed_all(parser, *chunks(stream, size))
        assert len(items) == 101
        # Rescanning the buffer from its start on every chunk would search ~2 GB in 1 KiB chunks.
        assert parser.bytes_scanned == len(stream), size


def test_parse_time_grows_linearly_with_the_event_size() -> None:
    def seconds(size: int) -> float:
        pieces = chunks(event_of(size), 65536)
        best = float("inf")
        for _ in range(5):
            parser = SSEParser(max_line=size, max_event=size)
            started = time.perf_counter()
            items = feed_all(parser, *pieces)
            best = min(best, time.perf_counter() - started)
            assert len(items) == 1
        return best

    small, large = seconds(1 * MIB), seconds(8 * MIB)
    # Linear: ~8x. Quadratic (the whole buffer searched per chunk): ~50x. Generous for a busy machine.
    assert large < 24 * small, (small, large)


def test_an_event_of_exactly_the_limits_passes_and_one_byte_more_is_refused() -> None:
    (event,) = SSEParser(max_line=100, max_event=100).feed(event_of(101))  # the line break is not counted
    assert len(event.data) == 101 - len(b"data: \n")
    with pytest.raises(LimitExceeded, match="SSE line longer than 100 bytes"):
        SSEParser(max_line=100, max_event=1000).feed(event_of(102))
    # Several data lines, each short, make one event too large.
    with pytest.raises(LimitExceeded, match="SSE event larger than 100 bytes"):
        SSEParser(max_line=100, max_event=100).feed(b"data: 0123456789\n" * 7 + b"\n")


def test_an_endless_line_is_refused_before_it_holds_more_than_the_limit_and_one_chunk() -> None:
    parser = SSEParser()
    fed = 0
    with pytest.raises(LimitExceeded, match="SSE line longer than 1 MiB"):
        parser.feed(b"data: ")
        for _ in range(10_000):  # 640 MiB at most, never reached
            parser.feed(b"y" * 65536)
            fed += 65536
    assert fed <= SSE_LINE_BYTES


def test_events_interleaved_with_comments_and_ids_do_not_add_up_to_a_large_event() -> None:
    parser = SSEParser(max_line=1000, max_event=1000)
    items = feed_all(parser, *(b": heartbeat\nid: %d\ndata: " % i + b"z" * 500 + b"\n\n" for i in range(1000)))
    assert len([i for i in items if isinstance(i, SSEEvent)]) == 1000


def test_a_limit_error_is_a_value_error_so_stream_users_treat_it_as_a_broken_connection() -> None:
    with pytest.raises(ValueError):
        SSEParser(max_line=10).feed(b"data: far too long\n")
