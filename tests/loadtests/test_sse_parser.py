"""The SSE parser, fed bytes the way a socket delivers them."""

from loadtests.sse_parser import SSEComment, SSEEvent, SSEParser, SSERetry


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
