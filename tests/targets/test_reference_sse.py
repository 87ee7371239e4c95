"""Server-Sent Events on the running reference target."""

from __future__ import annotations

import json
from typing import Any


def test_sse_headers_retry_and_event_format(target: Any, channel: str) -> None:
    target.publish(channel, {"old": True})  # before connecting: must not be replayed
    stream = target.sse(f"/sse?channel={channel}")
    try:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["x-accel-buffering"] == "no"
        assert "content-length" not in stream.headers
        first = stream.next_block()
        assert first["raw"] == "retry: 3000" and first["fields"] == {"retry": "3000"}
        # Subscription happens before the response headers are sent, so no wait is needed.
        published = target.publish(channel, {"k": "v"})
        block = stream.next_block()
        while not block["fields"]:  # skip heartbeats
            block = stream.next_block()
        assert set(block["fields"]) == {"id", "data"}
        assert block["raw"].splitlines()[:2] == [f"id: {published['seq']}", f"data: {block['fields']['data']}"]
        event = json.loads(block["fields"]["data"])
        assert event == {"seq": 2, "ts": published["ts"], "channel": channel, "k": "v"}
    finally:
        stream.close()


def test_sse_replays_after_last_event_id(target: Any, channel: str) -> None:
    for i in range(3):
        target.publish(channel, {"i": i})
    stream = target.sse(f"/sse?channel={channel}", headers={"Last-Event-ID": "1"})
    try:
        assert [stream.next_event()["id"] for _ in range(2)] == [2, 3]
        target.publish(channel)
        assert stream.next_event()["id"] == 4  # then live, no duplicate of the replay
    finally:
        stream.close()
    stream = target.sse(f"/sse?channel={channel}&last_event_id=3")
    try:
        got = stream.next_event()
        assert got["id"] == 4 and got["event"]["seq"] == 4
    finally:
        stream.close()


def test_sse_heartbeat_on_quiet_channel(target: Any, channel: str) -> None:
    stream = target.sse(f"/sse?channel={channel}")
    try:
        stream.next_block()  # retry
        block = stream.next_block()  # the shared target beats every 0.5 s
        assert block["comments"] == ["hb"] and block["raw"] == ": hb"
    finally:
        stream.close()


def test_sse_disconnect_removes_subscriber_and_decrements_gauge(target: Any, channel: str) -> None:
    # Streams of earlier tests are closed; wait until the server has seen that too.
    target.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="sse")
    stream = target.sse(f"/sse?channel={channel}")
    stream.next_block()
    assert target.metric("rtcap_open_connections", transport="sse") == 1
    stream.close()
    target.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="sse", timeout=3)
    # The subscriber is gone too: publishing to the channel delivers to nobody.
    delivered = target.metric("rtcap_events_delivered_total", transport="sse")
    target.publish(channel)
    assert target.get_json(f"/poll?channel={channel}")["seq"] == 1
    assert target.metric("rtcap_events_delivered_total", transport="sse") == delivered
