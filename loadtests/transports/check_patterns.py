"""`rtcap check-target` for the WebSocket patterns: signalling, request/response (rpc, rest) and presence.

The check hooks of the records that name this module as their `check_module` (targets/transports.py).
Signal and presence produce events like the other transports (`open_check`, and presence's own messages from
`send_check`; loadtests/run/check.py checks them for order, seq and ts); rpc and rest produce answers to
requests, checked here (`check_requests`): every id answered, statuses successful. Each hook serves only the
transports listed in its table and refuses any other, never checking it as one of these.
Blocking, Locust-free clients: this runs in the orchestrator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rtcap.targets.adapter_fields import parse_body
from rtcap.loadtests.transports.checking import CheckFailed, Receiver
from rtcap.loadtests.transports.http_client import HTTPConnection
from rtcap.loadtests.transports.ws_client import WebSocketClient
from rtcap.targets.adapter import TargetAdapter

if TYPE_CHECKING:
    from rtcap.targets.transports import Transport

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


def open_signal(adapter: TargetAdapter, timeout: float, receiver: Receiver) -> float:
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
                raise CheckFailed(f"fetch GET {url} answered {response.status}")
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


def open_presence(adapter: TargetAdapter, timeout: float, receiver: Receiver) -> float:
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


def _check_rpc(adapter: TargetAdapter, count: int, timeout: float) -> tuple[float, list[str]]:
    """`count` id-tagged requests on one socket, answered in any order, each once and successfully."""
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
                raise CheckFailed(f"requests {', '.join(sorted(pending))} unanswered after {timeout:g} s")
            text = client.receive()[0]
            answer = spec.response_of(parse_body(text))
            if answer is None:
                continue
            if str(answer[0]) not in pending:
                raise CheckFailed(f"response to id {answer[0]!r}, which was not asked (or answered twice): "
                                  f"{text[:200]}")
            if not answer[1]:
                raise CheckFailed(f"request {answer[0]} failed: {text[:200]}")
            pending.discard(str(answer[0]))
    finally:
        client.close()
    return connect_ms, ["response time", "requests/s", "errors and unanswered ids", "bytes"]


def _check_rest(adapter: TargetAdapter, count: int, timeout: float) -> tuple[float, list[str]]:
    """A GET answered 200, then (conditional transports with an ETag) a conditional GET answered 200 or 304."""
    spec = adapter.transport("rest")
    http = HTTPConnection(adapter.base_url, timeout=timeout, follow_redirects=adapter.follow_redirects)
    try:
        connect_ms = http.connect()
        first = http.get(adapter.url_for("rest"), dict(adapter.headers))
        if first.status != 200:
            raise CheckFailed(f"GET {adapter.url_for('rest')} answered {first.status}")
        etag = first.headers.get("etag")
        figures = ["response time", "requests/s", "errors", "bytes"]
        if etag and spec.conditional:
            again = http.get(adapter.url_for("rest"), {**adapter.headers, "If-None-Match": etag})
            if again.status not in (200, 304):
                raise CheckFailed(f"conditional GET answered {again.status}")
            figures.append("304 Not Modified" if again.status == 304 else "ETag, but no 304 (the state changed?)")
    finally:
        http.close()
    return connect_ms, figures


_OPENERS: dict[str, Callable[[TargetAdapter, float, Receiver], float]] = {
    "signal": open_signal, "presence": open_presence}
_REQUESTS: dict[str, Callable[[TargetAdapter, int, float], tuple[float, list[str]]]] = {
    "rpc": _check_rpc, "rest": _check_rest}


def open_check(adapter: TargetAdapter, record: Transport, timeout: float, receiver: Receiver) -> float:
    """Signal and presence: connect and start handing events to `receiver`; return the connect time in ms."""
    opener = _OPENERS.get(record.name)
    if opener is None:
        raise CheckFailed(f"no event check for transport {record.name!r}")  # never another transport's check
    return opener(adapter, timeout, receiver)


def send_check(adapter: TargetAdapter, record: Transport, count: int, receiver: Receiver) -> None:
    """Presence: the events are the check's own typing indicators, sent by its sender."""
    if record.name != "presence":
        raise CheckFailed(f"no messages to send for transport {record.name!r}")
    for text in presence_messages(adapter, count):
        receiver.client.send_text(text)


def check_requests(adapter: TargetAdapter, record: Transport, count: int, timeout: float) -> tuple[float, list[str]]:
    """Send `count` requests (rpc) or GETs (rest); (connect ms, figures), or CheckFailed naming what went wrong."""
    check = _REQUESTS.get(record.name)
    if check is None:
        raise CheckFailed(f"no request check for transport {record.name!r}")
    return check(adapter, count, timeout)
