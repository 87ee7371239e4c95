"""`rtcap check-target` for the WebSocket patterns: signalling, request/response (rpc, rest) and presence.

Signal and presence produce events like the other transports (checked by loadtests/transports/check.py for order, seq
and ts); rpc and rest produce answers to requests, checked here: every id answered, statuses successful.
Blocking, Locust-free clients: this runs in the orchestrator.
"""

from __future__ import annotations

import time
from typing import Any

from rtcap.loadtests.transports.http_client import HTTPConnection
from rtcap.loadtests.generator.targeting import parse_body
from rtcap.loadtests.transports.ws_client import WebSocketClient
from rtcap.targets.adapter import TargetAdapter

CHECK_CLIENT = "rtcap-check-sender"
"""The {client} token of the presence check's sender."""


class Clients:
    """Several connections closed together; `send_text` goes to the first (the presence check's sender)."""

    def __init__(self, *clients: Any) -> None:
        self.clients = clients

    def send_text(self, text: str) -> None:
        """Send on the first connection."""
        self.clients[0].send_text(text)

    def close(self) -> None:
        """Close every connection."""
        for client in self.clients:
            client.close()

    def abort(self) -> None:
        """Close every connection at once, waking threads blocked reading them (see WebSocketClient.abort)."""
        for client in self.clients:
            getattr(client, "abort", client.close)()


def open_signal(adapter: TargetAdapter, timeout: float, receiver: Any, failed: type[Exception]) -> float:
    """Connect the notification socket; on each notification fetch the events and hand them to `receiver`."""
    spec = adapter.transport("signal")
    ws = WebSocketClient(adapter.url_for("signal"), headers=adapter.headers, timeout=timeout)
    http = HTTPConnection(adapter.base_url, timeout=timeout, follow_redirects=adapter.follow_redirects)
    receiver.client = Clients(ws, http)
    connect_ms = ws.connect()
    subscribe = spec.render_subscribe(channel=adapter.channel)
    if subscribe is not None:
        ws.send_text(subscribe)
    state: dict[str, Any] = {"cursor": None}

    def read() -> None:
        while True:
            message = parse_body(ws.receive()[0])
            if not spec.is_notice(message):
                continue
            announced, cursor = spec.notice_seq(message), state["cursor"]
            if announced is not None and cursor is not None and not announced > cursor:
                continue
            since = cursor if cursor is not None else (announced - 1 if isinstance(announced, int) else 0)
            url = spec.render_fetch(adapter.base_url, channel=adapter.channel, cursor=since)
            response = http.get(url, dict(adapter.headers))
            if response.status != 200:
                raise failed(f"fetch GET {url} answered {response.status}")
            received_at = time.time()
            body = parse_body(response.body)
            last = None
            for event in spec.events_in(body):
                if adapter.is_event("signal", event):
                    last = adapter.extract("signal", event)[0]
                    receiver.items.put((event, received_at, None))
            state["cursor"] = spec.cursor_in(body, last if last is not None else cursor)

    receiver.run(read)
    return connect_ms


def open_presence(adapter: TargetAdapter, timeout: float, receiver: Any) -> float:
    """Put a listener and a sender in one room; the listener hands what it receives to `receiver`."""
    spec = adapter.transport("presence")
    room = f"{spec.room}-check"
    values = {"channel": adapter.channel, "room": room}
    listener = WebSocketClient(adapter.url_for("presence", **values), headers=adapter.headers, timeout=timeout)
    sender = WebSocketClient(adapter.url_for("presence", **values), headers=adapter.headers, timeout=timeout)
    receiver.client = Clients(sender, listener)
    connect_ms = listener.connect()  # the listener joins first, so it hears everything the sender says
    sender.connect()
    for client, token in ((listener, "rtcap-check-listener"), (sender, CHECK_CLIENT)):
        subscribe = spec.render_text("subscribe", client=token, **values)
        if subscribe is not None:
            client.send_text(subscribe)

    def read() -> None:
        while True:
            text, received_at, _wire = listener.receive()
            receiver.items.put((parse_body(text), received_at, None))

    receiver.run(read)
    return connect_ms


def presence_messages(adapter: TargetAdapter, count: int) -> list[str]:
    """The typing indicators the presence check's sender sends."""
    spec = adapter.transport("presence")
    values = {"channel": adapter.channel, "room": f"{spec.room}-check", "client": CHECK_CLIENT}
    return [spec.render_text("send", n=n, **values) or "" for n in range(1, count + 1)]


def check_requests(adapter: TargetAdapter, transport: str, count: int, timeout: float,
                   failed: type[Exception]) -> tuple[float, list[str]]:
    """Send `count` requests (rpc) or GETs (rest); (connect ms, figures), or `failed` naming what went wrong."""
    if transport == "rest":
        return _check_rest(adapter, timeout, failed)
    if transport != "rpc":
        raise failed(f"no request check for transport {transport!r}")
    spec = adapter.transport("rpc")
    client = WebSocketClient(adapter.url_for("rpc"), headers=adapter.headers, timeout=timeout)
    try:
        connect_ms = client.connect()
        subscribe = spec.render_subscribe(channel=adapter.channel)
        if subscribe is not None:
            client.send_text(subscribe)
        pending = {str(n) for n in range(1, count + 1)}
        for n in range(1, count + 1):
            client.send_text(spec.render_text("request", id=n, n=n, channel=adapter.channel) or "")
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise failed(f"requests {', '.join(sorted(pending))} unanswered after {timeout:g} s")
            text = client.receive()[0]
            answer = spec.response_of(parse_body(text))
            if answer is None:
                continue
            if str(answer[0]) not in pending:
                raise failed(f"response to id {answer[0]!r}, which was not asked (or answered twice): {text[:200]}")
            if not answer[1]:
                raise failed(f"request {answer[0]} failed: {text[:200]}")
            pending.discard(str(answer[0]))
    finally:
        client.close()
    return connect_ms, ["response time", "requests/s", "errors and unanswered ids", "bytes"]


def _check_rest(adapter: TargetAdapter, timeout: float, failed: type[Exception]) -> tuple[float, list[str]]:
    spec = adapter.transport("rest")
    http = HTTPConnection(adapter.base_url, timeout=timeout, follow_redirects=adapter.follow_redirects)
    try:
        connect_ms = http.connect()
        first = http.get(adapter.url_for("rest"), dict(adapter.headers))
        if first.status != 200:
            raise failed(f"GET {adapter.url_for('rest')} answered {first.status}")
        etag = first.headers.get("etag")
        figures = ["response time", "requests/s", "errors", "bytes"]
        if etag and spec.conditional:
            again = http.get(adapter.url_for("rest"), {**adapter.headers, "If-None-Match": etag})
            if again.status not in (200, 304):
                raise failed(f"conditional GET answered {again.status}")
            figures.append("304 Not Modified" if again.status == 304 else "ETag, but no 304 (the state changed?)")
    finally:
        http.close()
    return connect_ms, figures
