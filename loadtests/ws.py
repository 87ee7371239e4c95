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
from locust import User, between, task

from loadtests import metrics
from loadtests.backoff import Backoff
from loadtests.netio import websocket_url
from loadtests.options import Settings
from loadtests.seqtrack import SeqTracker
from loadtests.ws_client import WebSocketClient, WebSocketClosed


class _WebSocketUser(User):
    """Connection lifecycle shared by the feed listener and the chatter: connect, read, back off, resume."""

    abstract = True
    # The task only returns after an unexpected error: pause before Locust runs it again.
    wait_time = between(1, 3)
    transport = "ws"
    path = "/ws"

    def on_start(self) -> None:
        """Read the options and set up this user's state."""
        self.settings = Settings.of(self.environment)
        self.tracker = SeqTracker()
        self.backoff = Backoff(cap=self.settings.reconnect_max)
        self.client: WebSocketClient | None = None

    def socket_url(self) -> str:
        """The ws:// URL this user connects to."""
        return websocket_url(self.host, f"{self.path}?{urlencode(self.query())}")

    def query(self) -> dict[str, str]:
        """Query parameters of the connection URL."""
        return {"channel": self.settings.channel}

    def on_connected(self, client: WebSocketClient) -> None:
        """Hook: say what the server needs after the handshake (resume, subscribe...)."""

    def on_message(self, message: dict[str, Any], received_at: float, wire_bytes: int) -> None:
        """Hook: handle one received JSON message (`wire_bytes`: its frame on the wire)."""

    @task
    def hold(self) -> None:
        """Stay connected: reconnect after a jittered backoff whenever the connection breaks."""
        while True:
            if self._session():
                self.backoff.reset()
            time.sleep(self.backoff.next_delay())

    def _session(self) -> bool:
        client = WebSocketClient(self.socket_url(), timeout=self.settings.read_timeout)
        self.client = client
        self._reported = (0, 0)
        connected = False
        started = time.perf_counter()
        try:
            connect_ms = client.connect()
            connected = True
            metrics.open_connections[self.transport] += 1
            metrics.report_connect(self.environment, self.transport, connect_ms)
            self.on_connected(client)
            while True:
                text, received_at = client.receive()
                self.on_message(json.loads(text), received_at, _frame_bytes(text))
                self._flush_bytes(client)
        except (OSError, websocket.WebSocketException, WebSocketClosed, ValueError, KeyError) as error:
            elapsed = (time.perf_counter() - started) * 1000.0
            if connected:
                metrics.report_error(self.environment, self.transport, "stream", error, elapsed)
            else:
                metrics.report_connect(self.environment, self.transport, elapsed, error)
            return connected
        finally:
            if connected:
                metrics.open_connections[self.transport] -= 1
            self.on_disconnected()
            self._flush_bytes(client)
            client.close()

    def on_disconnected(self) -> None:
        """Hook: stop whatever runs beside the connection."""

    def _flush_bytes(self, client: WebSocketClient) -> None:
        # Report byte counts as they grow, so each second of the timeline gets its own share.
        sent, received = client.byte_counts
        metrics.count(self.transport, "bytes_sent", sent - self._reported[0])
        metrics.count(self.transport, "bytes_received", received - self._reported[1])
        self._reported = (sent, received)

    def on_stop(self) -> None:
        """Close the connection when Locust stops this user."""
        if self.client is not None:
            self.client.close()


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
            latency_ms = max(0.0, (received_at - float(message["ts"])) * 1000.0)
            self.environment.events.request.fire(
                request_type=self.transport, name="feed", response_time=latency_ms,
                response_length=0, exception=None, context={"transport": self.transport},
            )
        elif kind == "error":
            metrics.report_error(self.environment, self.transport, "server-error", RuntimeError(str(message.get("error"))))

    def on_disconnected(self) -> None:
        """Stop sending when the connection is gone."""
        if self.sender is not None:
            self.sender.kill(block=False)
            self.sender = None
