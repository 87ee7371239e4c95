"""NDJSON streams: the sans-I/O line parser; the blocking client against a real reference target (events in order,
latency from their ts, bytes equal to an independent proxy's); real headless Locust runs of NDJSONUser
(delivery, resume after a cut, wire and payload bytes, bad lines); and `rtcap check-target`."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from rtcap.bench.proxy import CutProxy
from rtcap.loadtests.cli import main
from rtcap.targets.adapter_fields import parse_body
from rtcap.loadtests.run.check import check_transport
from rtcap.loadtests.transports.limits import LimitExceeded, Limits, for_settings
from rtcap.loadtests.transports.ndjson_client import (
    NDJSONClient,
    NDJSONConnectError,
    NDJSONLine,
    NDJSONParser,
    StreamClosed,
)
from rtcap.targets.adapter import load_adapter, reference_adapter_path
from rtcap.targets.adapter_fields import FieldError
from tests.loadtests.locust_run import finish, locust_stats, start_locust, subscribers
from tests.loadtests.test_bytes import payload_expected, proxy, quiet_target  # noqa: F401  (fixtures: a quiet reference target, a counting proxy)

EVENTS = 25
KiB = 1024
MiB = 1024 * KiB


# ---------------------------------------------------------------- the parser


def feed_in(parser: NDJSONParser, data: bytes, size: int) -> list[NDJSONLine]:
    """Everything `data` completes, fed `size` bytes at a time."""
    return [line for i in range(0, len(data), size) for line in parser.feed(data[i : i + size])]


def test_lines_split_across_chunks_or_several_per_chunk_come_out_whole() -> None:
    lines = [b'{"seq":%d,"ts":1.5,"payload":"%s"}' % (i, b"x" * i) for i in range(1, 8)]
    body = b"".join(line + b"\n" for line in lines)
    for size in (1, 2, 3, 7, 64, len(body)):
        parser = NDJSONParser()
        got = feed_in(parser, body, size)
        assert [line.data for line in got] == lines, size
        assert sum(line.wire_bytes for line in got) == len(body)  # every body byte belongs to one line
        assert parser.buffered == 0 and parser.bytes_scanned == len(body)
    parser = NDJSONParser()
    assert [line.data for line in parser.feed(b'{"a":1}\n{"b":2}\n{"c"')] == [b'{"a":1}', b'{"b":2}']
    assert parser.buffered == 4  # the incomplete line waits for its break
    assert parser.feed(b":3}") == [] and [line.data for line in parser.feed(b"\n")] == [b'{"c":3}']


def test_crlf_ends_a_line_even_when_split_between_chunks() -> None:
    parser = NDJSONParser()
    assert parser.feed(b'{"a":1}\r') == []
    got = parser.feed(b'\n{"b":2}\r\n{"c":3}\n')
    assert got == [NDJSONLine(b'{"a":1}', 9), NDJSONLine(b'{"b":2}', 9), NDJSONLine(b'{"c":3}', 8)]
    assert [json.loads(line.data) for line in got] == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_blank_lines_are_keepalives_whose_bytes_go_to_the_next_line() -> None:
    parser = NDJSONParser()
    assert parser.feed(b"\n\r\n \t\n") == [] and parser.keepalives == 3
    assert parser.feed(b'{"a":1}\n\n') == [NDJSONLine(b'{"a":1}', 1 + 2 + 3 + 8)]
    assert parser.keepalives == 4


def test_an_over_long_line_is_refused_and_an_endless_one_never_buffered_past_the_limit() -> None:
    limit = 1000
    exact = NDJSONParser(max_line=limit)  # exactly the limit is allowed, its CRLF split across chunks too
    assert exact.feed(b"x" * limit + b"\r") == [] and exact.feed(b"\n") == [NDJSONLine(b"x" * limit, limit + 2)]
    with pytest.raises(LimitExceeded, match="^NDJSON line longer than 1000 bytes$"):
        NDJSONParser(max_line=limit).feed(b'{"ok":1}\n' + b"x" * (limit + 1) + b"\n")
    # No line break ever: refused on the first read that takes it past the limit, having held no more.
    parser, fed, chunk = NDJSONParser(max_line=64 * KiB), 0, b"y" * 4096
    with pytest.raises(LimitExceeded, match=r"^NDJSON line longer than 64 KiB \(no line break yet\)$") as refused:
        while fed < 10 * MiB:
            assert parser.buffered <= 64 * KiB
            parser.feed(chunk)
            fed += len(chunk)
    assert fed == 64 * KiB  # the feed that went past it raised
    assert isinstance(refused.value, OSError) and isinstance(refused.value, ValueError)  # a broken stream


def test_the_line_limit_is_the_clients_message_limit() -> None:
    assert NDJSONClient("http://127.0.0.1:9/x").parser.max_line == MiB
    assert NDJSONClient("http://127.0.0.1:9/x", limits=Limits(sse_line_bytes=77)).parser.max_line == 77
    limits = for_settings(SimpleNamespace(read_timeout=60.0, max_message_bytes=2048))
    assert NDJSONClient("http://127.0.0.1:9/x", limits=limits).parser.max_line == 2048


def test_parsing_is_linear_in_the_bytes_fed() -> None:
    line = b'{"seq":1,"payload":"' + b"x" * (4 * MiB) + b'"}\n'
    parser = NDJSONParser(max_line=8 * MiB)
    got = feed_in(parser, line, 64 * KiB)
    assert [len(x.data) for x in got] == [len(line) - 1]
    assert parser.bytes_scanned == len(line)  # each byte searched once, not once per chunk


def test_a_line_that_is_not_json_reaches_the_adapter_as_text_and_is_refused_as_a_message() -> None:
    adapter = load_adapter(reference_adapter_path()).with_port(9)
    got = NDJSONParser().feed(b'not json\n{"hello":1}\n{"seq":3,"ts":2.5}\n')
    messages = [parse_body(line.data) for line in got]  # exactly as the SSE user reads data
    assert messages[0] == "not json"
    with pytest.raises(FieldError, match="not JSON"):
        adapter.extract("ndjson", messages[0])
    with pytest.raises(FieldError, match="seq path 'seq' not found"):
        adapter.extract("ndjson", messages[1])
    assert adapter.extract("ndjson", messages[2]) == (3, 2.5)


# ---------------------------------------------------------------- the client, against a real reference target


def publish(base_url: str, channel: str) -> dict:
    """POST one event; the server's {"seq", "ts"} of it."""
    request = urllib.request.Request(f"{base_url}/publish?channel={channel}", data=b'{"pad": "xyz"}', method="POST",
                                     headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=5).read())


def events_sent(base_url: str, channel: str) -> dict[int, bytes]:
    """What the server holds for `channel`, read independently over /poll: seq -> the event's compact JSON."""
    body = json.loads(urllib.request.urlopen(f"{base_url}/poll?channel={channel}&since=0", timeout=5).read())
    return {event["seq"]: json.dumps(event, separators=(",", ":")).encode() for event in body["events"]}


def settled(proxy: CutProxy, counts: tuple[int, int], timeout: float = 5.0) -> tuple[int, int]:
    """Wait (bounded) until the proxy has forwarded what the client counted; return the proxy's counts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proxy.bytes_up, proxy.bytes_down) != counts:
        time.sleep(0.01)  # the proxy's pump threads offer nothing to wait on
    return proxy.bytes_up, proxy.bytes_down


def test_client_gets_published_events_in_order_with_bytes_equal_to_the_proxy_count(quiet_target: str,
                                                                                    proxy: CutProxy) -> None:
    channel = "ndjson-client"
    client = NDJSONClient(f"http://127.0.0.1:{proxy.port}/ndjson?channel={channel}", timeout=10)
    try:
        assert client.connect() > 0
        head = client.byte_counts
        published = [publish(quiet_target, channel) for _ in range(EVENTS)]
        received: list[tuple[NDJSONLine, float]] = []
        for line, received_at in client.items():
            received.append((line, received_at))
            if len(received) == EVENTS:
                break
        messages = [json.loads(line.data) for line, _ in received]
        assert [m["seq"] for m in messages] == [p["seq"] for p in published] == list(range(1, EVENTS + 1))
        assert [m["ts"] for m in messages] == [p["ts"] for p in published]
        for message, (_, received_at) in zip(messages, received):
            assert 0 <= received_at - message["ts"] < 2  # latency: receive time - the event's ts
        # The payload is exactly the events as the server holds them, one compact JSON text per line.
        sent = events_sent(quiet_target, channel)
        assert [line.data for line, _ in received] == [sent[seq] for seq in range(1, EVENTS + 1)]
        assert sum(line.wire_bytes for line, _ in received) == sum(len(data) + 1 for data in sent.values())
        # Every byte each way, head and chunk framing included, equals what an independent proxy forwarded.
        assert settled(proxy, client.byte_counts) == client.byte_counts
        # What is neither head nor lines is chunk framing ("NN\r\n" ... "\r\n" around each write, and the server
        # coalesces a backlog into one write): counted, at least one chunk's worth, at most one per event.
        framing = client.byte_counts[1] - head[1] - sum(len(data) + 1 for data in sent.values())
        assert 5 <= framing <= EVENTS * len("%x\r\n\r\n" % max(map(len, sent.values())))
    finally:
        client.close()


def test_client_refuses_what_is_not_an_ndjson_stream(quiet_target: str) -> None:
    for path, shown in (("/sse", "text/event-stream"), ("/nowhere", "404")):
        client = NDJSONClient(f"{quiet_target}{path}", timeout=5)
        try:
            with pytest.raises(NDJSONConnectError, match=f"{shown}.*expected 200 application/x-ndjson"):
                client.connect()
        finally:
            client.close()


def test_abort_wakes_a_reader_blocked_on_a_quiet_stream(quiet_target: str) -> None:
    client = NDJSONClient(f"{quiet_target}/ndjson?channel=ndjson-abort", timeout=30)
    client.connect()
    ended: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            for _ in client.items():
                pass
        except (StreamClosed, OSError) as error:
            ended.append(error)
        finally:
            done.set()

    threading.Thread(target=read, daemon=True).start()
    client.abort()
    assert done.wait(5), "the reader stayed blocked"
    assert ended


# ---------------------------------------------------------------- real Locust runs of NDJSONUser

USERS = 10
SECONDS = 5


def test_ndjson_users_receive_every_event_with_low_latency(reference_url: str, tmp_path: Path) -> None:
    totals = finish(start_locust(reference_url, "NDJSONUser", USERS, SECONDS, tmp_path), tmp_path)["ndjson"]
    # 20 events/s for about SECONDS to each of USERS connections (spawn and stop trim the edges).
    assert totals["delivered"] >= USERS * 20 * (SECONDS - 2)
    assert totals["connects"] == USERS and totals["open_connections"] == USERS
    assert totals["errors"] == 0
    assert totals.get("lost", 0) == totals.get("duplicated", 0) == totals.get("reordered", 0) == 0
    assert totals["payload_bytes"] > totals["delivered"] * 64  # each event carries a 64-byte payload
    assert totals["bytes_received"] > totals["payload_bytes"]
    delivery = locust_stats(tmp_path)[("ndjson", "delivery")]
    assert int(delivery["Failure Count"]) == 0
    assert 0 < float(delivery["50%"]) and float(delivery["99%"]) < 500  # loopback push: milliseconds
    subs = subscribers(tmp_path)
    assert len(subs) == USERS
    for sub in subs:
        assert sub["transport"] == "ndjson" and sub["lost"] == 0
        assert sub["received"] == sub["highest"] - sub["first"] + 1


def test_ndjson_users_reconnect_and_resume_without_loss(reference_url: str, tmp_path: Path) -> None:
    host, port = reference_url.removeprefix("http://").rsplit(":", 1)
    proxy = CutProxy(host, int(port))
    try:
        run = start_locust(f"http://127.0.0.1:{proxy.port}", "NDJSONUser", 5, 8, tmp_path, "--reconnect-max", "0.5")
        assert proxy.wait_for_connections(5, timeout=20)
        assert proxy.cut_all() == 5
        assert proxy.wait_for_connections(10, timeout=20)  # every user came back
        totals = finish(run, tmp_path)["ndjson"]
    finally:
        proxy.close()
    assert totals["connects"] >= 10
    assert totals["errors"] >= 5  # each cut stream is reported once
    # The resume_url (?since= the highest seq) replays what was published while disconnected, nothing twice.
    assert totals.get("lost", 0) == 0 and totals.get("duplicated", 0) == 0 and totals.get("reordered", 0) == 0
    assert totals["delivered"] >= 5 * 20 * 5


def _open_streams(base_url: str) -> float:
    """The target's own gauge of open ndjson streams."""
    text = urllib.request.urlopen(f"{base_url}/metrics", timeout=5).read().decode()
    line = next((x for x in text.splitlines() if x.startswith('rtcap_open_connections{transport="ndjson"}')), "")
    return float(line.split()[-1]) if line else 0.0


def test_ndjson_users_count_wire_bytes_as_the_proxy_does_and_the_lines_as_payload(quiet_target: str,
                                                                                   proxy: CutProxy,
                                                                                   tmp_path: Path) -> None:
    users, channel = 2, "ndjson-locust-bytes"
    run = start_locust(f"http://127.0.0.1:{proxy.port}", "NDJSONUser", users, 6, tmp_path, "--channel", channel)
    deadline = time.monotonic() + 20
    while _open_streams(quiet_target) < users and time.monotonic() < deadline:
        time.sleep(0.05)  # another process's streams: nothing to await but the target's gauge
    for _ in range(EVENTS):
        publish(quiet_target, channel)
    totals = finish(run, tmp_path)["ndjson"]
    sizes = {seq: len(data) for seq, data in events_sent(quiet_target, channel).items()}
    assert len(sizes) == EVENTS
    # The JSON text of each line, its line break not included.
    assert totals["payload_bytes"] == payload_expected(tmp_path, sizes, users, totals)
    # Every byte each socket moved, heads and chunk framing included, as the proxy saw it pass.
    assert proxy.wait_idle(10) == (totals["bytes_sent"], totals["bytes_received"])


class LineServer:
    """A tiny NDJSON server on 127.0.0.1: each GET gets `lines()`, one chunk per line, then the stream stays open
    until the client leaves. It keeps what it sent and counts the connections it accepted."""

    def __init__(self, lines: Callable[[], list[bytes]]) -> None:
        self.lines = lines
        self.sent: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                for line in self.lines():
                    conn.sendall(b"%x\r\n%s\n\r\n" % (len(line) + 1, line))
                    self.sent.append(line)
                while conn.recv(4096):
                    pass
            except OSError:
                pass  # the client left

    def close(self) -> None:
        """Stop accepting."""
        self.listener.close()


def test_a_bad_line_is_a_message_error_and_the_stream_stays_up(tmp_path: Path) -> None:
    def lines() -> list[bytes]:
        def event(seq: int) -> bytes:
            return json.dumps({"seq": seq, "ts": time.time()}).encode()
        return [event(1), b"not json", b'{"hello": 1}', event(2), b"", event(3)]

    server = LineServer(lines)
    try:
        totals = finish(start_locust(f"http://127.0.0.1:{server.port}", "NDJSONUser", 1, 3, tmp_path), tmp_path)
    finally:
        server.close()
    ndjson = totals["ndjson"]
    assert server.accepted == 1 and ndjson["connects"] == 1  # a bad line is no reason to drop the stream
    assert ndjson["delivered"] == 3 and ndjson.get("lost", 0) == 0
    stats = locust_stats(tmp_path)
    assert int(stats[("ndjson", "message")]["Failure Count"]) == 2  # as the SSE user reports bad data
    assert ("ndjson", "stream") not in stats
    assert ndjson["payload_bytes"] == sum(len(line) for line in server.sent)  # every non-blank line, good or bad


# ---------------------------------------------------------------- rtcap check-target


def test_check_target_passes_ndjson_on_the_reference_target(reference_url: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    result = check_transport(load_adapter(reference_adapter_path()).with_base_url(reference_url), "ndjson")
    assert result.ok, result.why
    assert result.events == 3 and result.connect_ms is not None and result.connect_ms > 0
    assert result.offset_ms is not None and -5 < result.offset_ms < 1000  # same clock: receive - ts is latency
    assert "delivery latency" in result.figures
    # The command, starting a fresh reference server from its adapter as `rtcap run` would.
    assert main(["check-target", str(reference_adapter_path()), "--transports", "ndjson"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("ndjson "))
    assert " ok " in row and "delivery latency" in row
