"""WebSockets: abstract Locust users on top of `ws_client.WebSocketClient`.

`WebSocketListener` holds the `/ws` feed (the push transport compared with SSE and polling);
`WebSocketChatter` joins a `/ws/chat` room, sends chat messages at a set rate and receives the broadcasts.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any
from urllib.parse import urlencode

import gevent
import websocket

from loadtests import metrics
from loadtests.netio import websocket_url
from loadtests.stream import StreamUser
from loadtests.ws_client import WebSocketClient, WebSocketClosed


class _WebSocketUser(StreamUser):
    """A stream user whose connection is a WebSocket carrying JSON text messages."""

    abstract = True
    path = "/ws"
    stream_errors = (*StreamUser.stream_errors, websocket.WebSocketException, WebSocketClosed)

    def socket_url(self) -> str:
        """The ws:// URL this user connects to."""
        return websocket_url(self.host, f"{self.path}?{urlencode(self.query())}")

    def query(self) -> dict[str, str]:
        """Query parameters of the connection URL."""
        return {"channel": self.settings.channel}

    def new_client(self) -> WebSocketClient:
        """A new WebSocket client for this user's URL."""
        return WebSocketClient(self.socket_url(), timeout=self.settings.read_timeout)

    def read(self, client: WebSocketClient) -> None:
        """Hand every JSON message to `on_message` until the connection breaks."""
        while True:
            text, received_at = client.receive()
            self.on_message(json.loads(text), received_at, _frame_bytes(text))
            self.flush_bytes(client)

    def on_message(self, message: dict[str, Any], received_at: float, wire_bytes: int) -> None:
        """Hook: handle one received JSON message (`wire_bytes`: its frame on the wire)."""


def _frame_bytes(text: str) -> int:
    """Bytes of an unmasked server text frame carrying `text` (header 2, 4 or 10 bytes)."""
    size = len(text.encode("utf-8"))
    return size + (2 if size < 126 else 4 if size < 65536 else 10)


class WebSocketListener(_WebSocketUser):
    """Holds one `/ws` feed connection, reports each event's delivery latency, resumes from its last seq."""

    abstract = True
    transport = "ws"
    path = "/ws"

    def query(self) -> dict[str, str]:
        """Subscribe to the channel; after a reconnect, resume after the last seq received.

        `since` in the URL makes the server replay missed events before any live one, in order; a
        `{"type": "resume"}` message after connecting could interleave replayed and live events.
        """
        query = super().query()
        if self.tracker.highest is not None:
            query["since"] = str(self.tracker.highest)
        return query

    def on_message(self, message: dict[str, Any], received_at: float, wire_bytes: int) -> None:
        """Report a feed event; ignore control messages."""
        if "seq" not in message or message.get("type") not in (None, "event"):
            return
        metrics.report_delivery(self.environment, self.transport, float(message["ts"]), received_at, wire_bytes)
        metrics.track_sequence(self.environment, self.transport, self.tracker, int(message["seq"]))


class WebSocketChatter(_WebSocketUser):
    """Joins a chat room, sends chat messages at `--chat-rate` and measures the room's broadcast latency."""

    abstract = True
    transport = "chat"
    path = "/ws/chat"

    def on_start(self) -> None:
        """Set up the chatter's sender state on top of the connection state."""
        super().on_start()
        self.sender: gevent.Greenlet | None = None
        self.sent = 0

    def query(self) -> dict[str, str]:
        """Join the configured room."""
        return {"room": self.settings.chat_room}

    def on_connected(self, client: WebSocketClient) -> None:
        """Subscribe to the channel's feed and start sending chat messages."""
        client.send_json({"type": "subscribe", "channel": self.settings.channel})
        if self.settings.chat_rate > 0:
            self.sender = gevent.spawn(self._send_loop, client)

    def _send_loop(self, client: WebSocketClient) -> None:
        # Random phase, then a steady pace: chatters do not all send in the same instant.
        period = 1.0 / self.settings.chat_rate
        time.sleep(random.uniform(0, period))
        text = "x" * self.settings.chat_size
        while True:
            self.sent += 1
            try:
                client.send_json({"type": "chat", "text": text, "id": self.sent, "sent": time.time()})
            except (OSError, websocket.WebSocketException) as error:
                metrics.report_error(self.environment, self.transport, "send", error)
                return
            time.sleep(period)

    def on_message(self, message: dict[str, Any], received_at: float, wire_bytes: int) -> None:
        """Report chat broadcasts (fan-out latency) and feed events received over the chat socket."""
        kind = message.get("type")
        if kind == "chat":
            metrics.report_delivery(self.environment, self.transport, float(message["ts"]), received_at, wire_bytes)
            metrics.track_sequence(self.environment, self.transport, self.tracker, int(message["seq"]))
        elif kind == "event":
            # Feed events over the chat socket get their own Locust row, apart from chat fan-out latency.
            metrics.report_delivery(self.environment, self.transport, float(message["ts"]), received_at, wire_bytes, name="feed")
        elif kind == "error":
            metrics.report_error(self.environment, self.transport, "server-error", RuntimeError(str(message.get("error"))))

    def on_disconnected(self) -> None:
        """Stop sending when the connection is gone."""
        if self.sender is not None:
            self.sender.kill(block=False)
            self.sender = None
