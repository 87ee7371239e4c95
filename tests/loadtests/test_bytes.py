"""Bytes on the wire: what each client counts at its socket equals what an independent proxy saw pass; and the
application (payload) bytes the push users count equal the event data the server sent."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtcap.bench.proxy import CutProxy
from rtcap.loadtests.transports.http_client import HTTPConnection
from rtcap.loadtests.transports.sse_client import SSEClient
from rtcap.loadtests.transports.sse_parser import SSEEvent
from rtcap.loadtests.transports.ws_client import WebSocketClient
from tests.conftest import launch_reference
from tests.loadtests.locust_run import finish, start_locust, subscribers

EVENTS = 25


@pytest.fixture(scope="module")
def quiet_target() -> Iterator[str]:
    """A reference target that publishes only when told to, and sends no heartbeats during a test."""
    target = launch_reference("--heartbeat", "600", rate=0, payload=100)
    yield target.adapter.base_url
    target.stop()


@pytest.fixture
def proxy(quiet_target: str) -> Iterator[CutProxy]:
    host, port = quiet_target.removeprefix("http://").rsplit(":", 1)
    proxy = CutProxy(host, int(port))
    yield proxy
    proxy.close()


def payload_expected(record: Path, sizes: dict[int, int], users: int, totals: dict) -> int:
    """The payload bytes the subscribers' seq ranges add up to; each got every event from its first on, and the
    delivered total is theirs."""
    subs = subscribers(record)
    assert len(subs) == users
    expected = 0
    for sub in subs:
        assert sub["highest"] == EVENTS and sub["received"] == sub["highest"] - sub["first"] + 1
        expected += sum(sizes[seq] for seq in range(sub["first"], sub["highest"] + 1))
    assert totals["delivered"] == sum(sub["received"] for sub in subs) >= users * (EVENTS - 1)
    return expected


def publish(base_url: str, channel: str, count: int) -> None:
    for _ in range(count):
        request = urllib.request.Request(f"{base_url}/publish?channel={channel}", data=b'{"pad": "xyz"}',
                                         method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).read()


def settled(proxy: CutProxy, client_counts, timeout: float = 5.0) -> tuple[int, int]:
    """Wait (bounded) until the proxy has forwarded what the client counts; return the proxy's counts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proxy.bytes_up, proxy.bytes_down) != client_counts():
        time.sleep(0.01)
    return proxy.bytes_up, proxy.bytes_down


def test_sse_bytes_equal_the_proxy_count(quiet_target: str, proxy: CutProxy) -> None:
    client = SSEClient(f"http://127.0.0.1:{proxy.port}/sse?channel=bytes-sse", timeout=10)
    client.connect()
    publish(quiet_target, "bytes-sse", EVENTS)
    events = 0
    for item, _ in client.items():
        if isinstance(item, SSEEvent):
            events += 1
            if events == EVENTS:
                break
    assert settled(proxy, lambda: client.byte_counts) == client.byte_counts
    assert client.byte_counts[1] > EVENTS * 50  # id, data and framing of every event
    client.close()


def test_websocket_bytes_equal_the_proxy_count(quiet_target: str, proxy: CutProxy) -> None:
    client = WebSocketClient(f"ws://127.0.0.1:{proxy.port}/ws?channel=bytes-ws", timeout=10)
    client.connect()
    client.send_json({"type": "ping"})  # a masked client frame, so the sent side has frames too
    publish(quiet_target, "bytes-ws", EVENTS)
    events = 0
    while events < EVENTS:
        text, _, _ = client.receive()
        events += "seq" in json.loads(text)
    assert settled(proxy, lambda: client.byte_counts) == client.byte_counts
    client.close()
    # The close handshake is counted as well.
    assert settled(proxy, lambda: client.byte_counts) == client.byte_counts


def test_polling_bytes_equal_the_proxy_count(quiet_target: str, proxy: CutProxy) -> None:
    http = HTTPConnection(f"http://127.0.0.1:{proxy.port}", timeout=10)
    etag = None
    for round_ in range(6):
        if round_ % 2:
            publish(quiet_target, "bytes-poll", 3)
        headers = {"If-None-Match": etag} if etag else {}
        response = http.get(f"http://127.0.0.1:{proxy.port}/poll?channel=bytes-poll&since=0", headers)
        assert response.status in (200, 304)
        etag = response.headers.get("etag", etag)
    assert http.connects == 1  # keep-alive: one connection for all polls
    assert settled(proxy, lambda: http.byte_counts) == http.byte_counts
    http.close()


def _open_streams(base_url: str, transport: str) -> float:
    """The target's own gauge of open streams of `transport` (from /metrics)."""
    text = urllib.request.urlopen(f"{base_url}/metrics", timeout=5).read().decode()
    match = re.search(rf'^rtcap_open_connections\{{transport="{transport}"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize(("user_class", "transport"), [("SSEUser", "sse"), ("WebSocketUser", "ws")])
def test_push_users_count_the_event_data_as_payload_bytes(quiet_target: str, tmp_path: Path, user_class: str,
                                                           transport: str) -> None:
    users, channel = 2, f"payload-{transport}"
    run = start_locust(quiet_target, user_class, users, 6, tmp_path, "--channel", channel)
    deadline = time.monotonic() + 20
    while _open_streams(quiet_target, transport) < users and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded wait for the users' streams to open; nothing to await across processes
    publish(quiet_target, channel, EVENTS)
    totals = finish(run, tmp_path)[transport]
    # What the server sent as data, read independently over /poll: each event's compact JSON (as the
    # reference target serialises it once for every transport).
    body = json.loads(urllib.request.urlopen(f"{quiet_target}/poll?channel={channel}&since=0", timeout=5).read())
    sizes = {event["seq"]: len(json.dumps(event, separators=(",", ":")).encode()) for event in body["events"]}
    assert len(sizes) == EVENTS
    assert totals.get("payload_bytes", 0) == payload_expected(tmp_path, sizes, users, totals)
    assert totals["bytes_received"] > totals["payload_bytes"]  # framing and handshake are overhead
