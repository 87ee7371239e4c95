"""HTTP endpoints of the running reference target: publish, poll, long poll, state, health, metrics."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def test_healthz(target: Any) -> None:
    health = target.get_json("/healthz")
    assert health["status"] == "ok"
    assert health["pid"] == target.pid == target.proc.pid
    assert health["uptime_s"] > 0
    assert "live" in health["channels"]


def test_publish_returns_seq_and_merges_body_fields(target: Any, channel: str) -> None:
    first = target.publish(channel, {"hello": "world", "seq": 99, "channel": "other", "ts": 0})
    second = target.publish(channel)  # no body at all
    assert first["seq"] == 1 and second["seq"] == 2
    assert abs(first["ts"] - time.time()) < 5
    events = target.get_json(f"/poll?channel={channel}")["events"]
    assert events[0] == {"seq": 1, "ts": first["ts"], "channel": channel, "hello": "world"}
    assert events[1] == {"seq": 2, "ts": second["ts"], "channel": channel}


def test_publish_rejects_oversize_and_bad_bodies(target: Any, channel: str) -> None:
    big = json.dumps({"blob": "x" * 70_000}).encode()
    status, _, _ = target.request("POST", f"/publish?channel={channel}", body=big)
    assert status == 413
    assert target.request("POST", f"/publish?channel={channel}", body=b"{not json")[0] == 400
    assert target.request("POST", f"/publish?channel={channel}", body=b"[1, 2]")[0] == 400
    assert target.get_json(f"/poll?channel={channel}")["seq"] == 0  # nothing was published


def test_poll_since_etag_and_304(target: Any, channel: str) -> None:
    for _ in range(3):
        target.publish(channel, {"n": 1})
    status, headers, body = target.request("GET", f"/poll?channel={channel}&since=0")
    doc = json.loads(body)
    assert status == 200 and headers["etag"] == f'"{channel}:3"'
    assert doc["channel"] == channel and doc["seq"] == 3 and "gap" not in doc
    assert [e["seq"] for e in doc["events"]] == [1, 2, 3]
    assert [e["seq"] for e in target.get_json(f"/poll?channel={channel}&since=2")["events"]] == [3]

    status, headers, body = target.request(
        "GET", f"/poll?channel={channel}&since=3", headers={"If-None-Match": f'"{channel}:3"'}
    )
    assert (status, headers["etag"], body) == (304, f'"{channel}:3"', b"")

    target.publish(channel)
    status, headers, body = target.request(
        "GET", f"/poll?channel={channel}&since=3", headers={"If-None-Match": f'"{channel}:3"'}
    )
    assert status == 200 and headers["etag"] == f'"{channel}:4"'
    assert [e["seq"] for e in json.loads(body)["events"]] == [4]


def test_poll_unknown_channel_is_empty_not_404(target: Any, channel: str) -> None:
    status, headers, body = target.request("GET", f"/poll?channel={channel}")
    assert status == 200 and headers["etag"] == f'"{channel}:0"'
    assert json.loads(body) == {"channel": channel, "seq": 0, "events": []}
    assert channel in target.get_json("/healthz")["channels"]
    assert target.request("GET", "/poll?channel=no%20spaces")[0] == 422


def test_poll_flags_gap_when_buffer_overflowed(target: Any, channel: str) -> None:
    for _ in range(55):  # the shared target keeps 50 events per channel
        target.publish(channel)
    doc = target.get_json(f"/poll?channel={channel}&since=0")
    assert doc["gap"] is True
    assert [e["seq"] for e in doc["events"]] == list(range(6, 56))
    assert "gap" not in target.get_json(f"/poll?channel={channel}&since=5")


def test_long_poll_wakes_up_on_publish(target: Any, channel: str) -> None:
    target.publish(channel)
    result: dict[str, Any] = {}
    done = threading.Event()

    def hold() -> None:
        start = time.monotonic()
        result["response"] = target.request("GET", f"/poll?channel={channel}&since=1&wait=10", timeout=15)
        result["elapsed"] = time.monotonic() - start
        done.set()

    base = target.metric("rtcap_open_connections", transport="longpoll")
    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    # Publish only once the server holds the request, so this really tests the wake-up.
    target.wait_metric("rtcap_open_connections", lambda v: v >= base + 1, transport="longpoll")
    assert not done.is_set()
    published = target.publish(channel, {"wake": True})
    assert done.wait(5), "held long poll did not return after publish"
    status, headers, body = result["response"]
    doc = json.loads(body)
    assert status == 200 and headers["etag"] == f'"{channel}:2"'
    assert doc["events"] == [{"seq": 2, "ts": published["ts"], "channel": channel, "wake": True}]
    assert result["elapsed"] < 8
    target.wait_metric("rtcap_open_connections", lambda v: v == base, transport="longpoll")


def test_abandoned_long_poll_is_released_promptly(target: Any, channel: str) -> None:
    target.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="longpoll")
    sock = socket.create_connection((target.host, target.port), timeout=5)
    sock.sendall(f"GET /poll?channel={channel}&wait=25 HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    target.wait_metric("rtcap_open_connections", lambda v: v == 1, transport="longpoll")
    sock.close()
    # Long before the 25 s wait expires, the server notices and frees the request.
    target.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="longpoll", timeout=3)


def test_long_poll_times_out_empty_or_304(target: Any, channel: str) -> None:
    target.publish(channel)
    start = time.monotonic()
    status, _, body = target.request("GET", f"/poll?channel={channel}&since=1&wait=0.3")
    assert status == 200 and json.loads(body)["events"] == []
    assert 0.25 <= time.monotonic() - start < 3
    start = time.monotonic()
    status, headers, body = target.request(
        "GET", f"/poll?channel={channel}&wait=0.3", headers={"If-None-Match": f'"{channel}:1"'}
    )
    assert (status, body) == (304, b"") and headers["etag"] == f'"{channel}:1"'
    assert 0.25 <= time.monotonic() - start < 3  # matching ETag waited for news first


def test_long_poll_returns_at_once_when_events_are_pending(target: Any, channel: str) -> None:
    target.publish(channel)
    start = time.monotonic()
    doc = target.get_json(f"/poll?channel={channel}&since=0&wait=10")
    assert [e["seq"] for e in doc["events"]] == [1]
    assert time.monotonic() - start < 2


def test_state_returns_whole_buffer_every_time(target: Any, channel: str) -> None:
    empty = target.get_json(f"/state?channel={channel}")
    assert empty == {"channel": channel, "seq": 0, "ts": None, "events": []}
    stamps = [target.publish(channel, {"i": i})["ts"] for i in range(3)]
    for _ in range(2):
        status, headers, body = target.request(
            "GET", f"/state?channel={channel}", headers={"If-None-Match": f'"{channel}:3"'}
        )
        doc = json.loads(body)
        assert status == 200 and "etag" not in headers
        assert doc["seq"] == 3 and doc["ts"] == stamps[-1]
        assert [e["i"] for e in doc["events"]] == [0, 1, 2]


def test_ticker_rate_from_event_timestamps(target: Any) -> None:
    # Wait (long poll, no sleeps) until the 20/s ticker has produced a few seconds of events.
    deadline = time.monotonic() + 10
    seq = target.get_json("/poll?channel=live&since=0")["seq"]
    while seq < 45:
        assert time.monotonic() < deadline, "ticker is not publishing"
        seq = target.get_json(f"/poll?channel=live&since={seq}&wait=5")["seq"]
    events = target.get_json("/state?channel=live")["events"]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert all(len(e["payload"]) == 32 for e in events)
    last = events[-1]["ts"]
    in_last_second = [e for e in events if last - 1.0 < e["ts"] <= last]
    assert 10 <= len(in_last_second) <= 30


def test_metrics_exposition_parses(target: Any, channel: str) -> None:
    target.publish(channel)
    target.get_json(f"/poll?channel={channel}")
    status, headers, body = target.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in (
        "rtcap_open_connections",
        "rtcap_events_published",
        "rtcap_events_delivered",
        "rtcap_slow_consumers_dropped",
        "rtcap_connections_rejected",
        "process_resident_memory_bytes",
        "process_cpu_seconds",
    ):
        assert name in families, name
    assert families["rtcap_open_connections"].type == "gauge"
    assert families["rtcap_events_published"].type == "counter"
    transports = {s.labels["transport"] for s in families["rtcap_open_connections"].samples}
    assert transports == {"poll", "longpoll", "sse", "ndjson", "ws", "chat", "rpc"}
    published = {
        s.labels["channel"]: s.value for s in families["rtcap_events_published"].samples if s.name.endswith("_total")
    }
    assert published[channel] == 1 and published["live"] > 0
    assert target.metric("rtcap_events_delivered_total", transport="poll") >= 1
    assert families["process_resident_memory_bytes"].samples[0].value > 0


def test_state_bytes_pad_every_full_state_with_the_same_board(start_target: Any) -> None:
    padded = start_target("--rate", "0", "--state-bytes", "9000")
    padded.publish("live")
    first = padded.request("GET", "/state?channel=live")[2]
    padded.publish("live")
    second = padded.request("GET", "/state?channel=live")[2]
    for body in (first, second):
        doc = json.loads(body)
        assert doc["board"] == "x" * 9000
    assert [e["seq"] for e in json.loads(second)["events"]] == [1, 2]
    # The board is sent whole every time: the second state is the first plus one event (and its comma), and a
    # newer "ts" whose printed length may differ by a digit or two.
    ts_chars = len(json.dumps(json.loads(second)["ts"])) - len(json.dumps(json.loads(first)["ts"]))
    event = len(json.dumps(json.loads(second)["events"][1], separators=(",", ":")))
    assert len(second) - len(first) == event + 1 + ts_chars
