"""The NDJSON stream (`GET /ndjson`) of the running reference target: the SSE route's events, one JSON object per
line, with its resume (`?since=`), connection accounting, limits, ballast and calibration faults."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from tests.targets.conftest import IO_TIMEOUT_S, Target

MiB = 1 << 20


class NDJSONStream:
    """A blocking NDJSON reader over http.client (which undoes the chunking), one raw line at a time."""

    def __init__(self, target: Target, path: str) -> None:
        self.conn = http.client.HTTPConnection(target.host, target.port, timeout=IO_TIMEOUT_S)
        self.conn.request("GET", path)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}

    def next_line(self) -> bytes:
        """The next raw line, its line break included."""
        line = self.response.readline()
        if not line:
            raise EOFError("NDJSON stream ended")
        return line

    def events(self) -> Iterator[dict[str, Any]]:
        """Each event, keep-alive lines skipped."""
        while True:
            line = self.next_line()
            if line.strip():
                yield json.loads(line)

    def seqs(self, n: int) -> list[int]:
        """The seqs of the next `n` events."""
        events = self.events()
        return [next(events)["seq"] for _ in range(n)]

    def close(self) -> None:
        """Drop the connection."""
        self.conn.close()


def open_streams(t: Target, n: int, path: str = "/ndjson") -> list[NDJSONStream]:
    streams = [NDJSONStream(t, path) for _ in range(n)]
    assert all(s.status == 200 for s in streams)
    t.wait_metric("rtcap_open_connections", lambda v: v == n, transport="ndjson")
    return streams


def test_ndjson_headers_and_one_json_object_per_line_as_sse_sends_it(target: Target, channel: str) -> None:
    target.publish(channel, {"old": True})  # before connecting: must not be replayed
    stream = NDJSONStream(target, f"/ndjson?channel={channel}")
    sse = target.sse(f"/sse?channel={channel}")
    try:
        assert stream.status == 200
        assert stream.headers["content-type"] == "application/x-ndjson"
        assert stream.headers["cache-control"] == "no-cache" and stream.headers["x-accel-buffering"] == "no"
        assert "content-length" not in stream.headers and stream.headers["transfer-encoding"] == "chunked"
        # Both streams are subscribed before their response heads are sent, so no wait is needed.
        published = target.publish(channel, {"k": "v"})
        line = next(raw for raw in iter(stream.next_line, None) if raw.strip())
        data = sse.next_event()
        assert line.endswith(b"\n") and b"\n" not in line[:-1]
        event = json.loads(line)
        assert event == {"seq": 2, "ts": published["ts"], "channel": channel, "k": "v"} == data["event"]
        # Byte for byte what the SSE route sends as data: (the event is serialised once for every transport).
        assert line[:-1].decode() == json.dumps(data["event"], separators=(",", ":"))
    finally:
        stream.close()
        sse.close()


def test_ndjson_replays_after_since_then_goes_live_without_duplicates(target: Target, channel: str) -> None:
    for i in range(3):
        target.publish(channel, {"i": i})
    stream = NDJSONStream(target, f"/ndjson?channel={channel}&since=1")
    try:
        assert stream.seqs(2) == [2, 3]
        target.publish(channel)
        assert stream.seqs(1) == [4]
    finally:
        stream.close()
    # An unusable cursor means no replay (as an unusable Last-Event-ID does for SSE): live events only.
    stream = NDJSONStream(target, f"/ndjson?channel={channel}&since=latest")
    try:
        assert stream.status == 200
        target.publish(channel)
        assert stream.seqs(1) == [5]
    finally:
        stream.close()


def test_ndjson_sends_blank_keepalive_lines_on_a_quiet_channel(target: Target, channel: str) -> None:
    stream = NDJSONStream(target, f"/ndjson?channel={channel}")
    try:
        assert stream.next_line() == b"\n"  # the shared target beats every 0.5 s
    finally:
        stream.close()


def test_ndjson_connections_and_deliveries_are_counted_under_their_own_label(target: Target, channel: str) -> None:
    target.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="ndjson")
    stream = NDJSONStream(target, f"/ndjson?channel={channel}")
    try:
        assert target.metric("rtcap_open_connections", transport="ndjson") == 1
        delivered = target.metric("rtcap_events_delivered_total", transport="ndjson")
        sse_delivered = target.metric("rtcap_events_delivered_total", transport="sse")
        target.publish(channel)
        assert stream.seqs(1) == [1]
        target.wait_metric("rtcap_events_delivered_total", lambda v: v == delivered + 1, transport="ndjson")
        assert target.metric("rtcap_events_delivered_total", transport="sse") == sse_delivered
    finally:
        stream.close()
    target.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="ndjson", timeout=3)


def test_ndjson_is_refused_past_max_connections_and_max_channels(start_target: Callable[..., Target]) -> None:
    t = start_target("--max-connections", "1", "--max-channels", "2", "--rate", "0")
    held = NDJSONStream(t, "/ndjson")
    try:
        assert held.status == 200
        status, headers, body = t.request("GET", "/ndjson")
        assert status == 503 and "retry-after" in headers and json.loads(body)["error"] == "too many connections"
        assert t.metric("rtcap_connections_rejected_total", transport="ndjson") == 1
    finally:
        held.close()
    t.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="ndjson")
    second = NDJSONStream(t, "/ndjson?channel=second")  # the slot is free again; "live" and "second" are 2 channels
    try:
        assert second.status == 200
        status, _, body = t.request("GET", "/ndjson?channel=third")
        assert status == 429 and "too many channels" in json.loads(body)["error"]
    finally:
        second.close()


def test_ndjson_connections_hold_the_ballast(start_target: Callable[..., Target]) -> None:
    t = start_target("--rate", "0", "--ballast", str(MiB))
    health = t.get_json("/healthz")["calibration"]
    assert health["ballast_bytes"]["ndjson"] == MiB and health["ballast_held_bytes"] == 0
    streams = open_streams(t, 3)
    try:
        assert t.get_json("/healthz")["calibration"]["ballast_held_bytes"] == 3 * MiB
    finally:
        for stream in streams:
            stream.close()
    t.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="ndjson")
    assert t.get_json("/healthz")["calibration"]["ballast_held_bytes"] == 0


def test_ndjson_drops_exactly_the_multiples_and_counts_them(start_target: Callable[..., Target]) -> None:
    t = start_target("--rate", "0", "--drop-every", "10", "--duplicate-every", "7")
    for _ in range(100):
        t.publish("exact")
    stream = NDJSONStream(t, "/ndjson?channel=exact&since=0")
    expected = sorted([*(s for s in range(1, 101) if s % 10), *(s for s in range(7, 101, 7) if s % 10)])
    try:
        assert stream.seqs(len(expected)) == expected
    finally:
        stream.close()
    t.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="ndjson")
    injected = t.get_json("/healthz")["calibration"]["injected"]
    # Multiples of 7 up to 100 are 14, but 70 is dropped first (drop comes before duplicate).
    assert injected["drop"]["ndjson"] == 10 and injected["duplicate"]["ndjson"] == 13
    assert injected["drop"]["sse"] == 0
    assert t.metric("rtcap_injected_total", kind="drop", transport="ndjson") == 10


def test_ndjson_events_wait_for_the_delay(start_target: Callable[..., Target]) -> None:
    t = start_target("--rate", "0", "--delay-ms", "200")
    stream = NDJSONStream(t, "/ndjson?channel=late")
    try:
        events = stream.events()
        for _ in range(3):
            published = t.publish("late")
            event = next(events)
            waited = time.time() - published["ts"]
            assert event["seq"] == published["seq"] and 0.2 <= waited < 1.0, waited
    finally:
        stream.close()
