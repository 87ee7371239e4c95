"""Bytes on the wire: what each client counts at its socket equals what an independent proxy saw pass."""

from __future__ import annotations

import json
import time
from dataclasses import replace
import urllib.request
from collections.abc import Iterator

import pytest

from loadtests.http_client import HTTPConnection
from loadtests.sse_client import SSEClient
from loadtests.sse_parser import SSEEvent
from loadtests.ws_client import WebSocketClient
from targets.adapter import load_adapter, reference_adapter_path
from targets.launch import launch
from tests.loadtests.cutproxy import CutProxy

EVENTS = 25


@pytest.fixture(scope="module")
def quiet_target() -> Iterator[str]:
    """A reference target that publishes only when told to, and sends no heartbeats during a test."""
    adapter = load_adapter(reference_adapter_path())
    quiet = replace(adapter.process, start=[*adapter.process.start, "--heartbeat", "600"])
    target = launch(replace(adapter, process=quiet), rate=0, payload=100)
    yield target.adapter.base_url
    target.stop()


@pytest.fixture
def proxy(quiet_target: str) -> Iterator[CutProxy]:
    host, port = quiet_target.removeprefix("http://").rsplit(":", 1)
    proxy = CutProxy(host, int(port))
    yield proxy
    proxy.close()


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
