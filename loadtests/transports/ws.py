"""WebSockets: abstract Locust users on top of `ws_client.WebSocketClient`, and the ws and chat transports'
concrete users, `WebSocketUser` and `ChatUser`.

`WebSocketListener` holds the feed (the push transport compared with SSE and polling);
`WebSocketChatter` joins a chat room, sends chat messages at a set rate and receives the broadcasts.
URLs, subscribe and chat messages, and where seq and ts sit in a message come from the target adapter.
A message past `ws_message_bytes`, a slow handshake or frame, a redirect: each raises LimitExceeded (an
OSError), which `StreamUser` reports against the target before reconnecting.
"""

from __future__ import annotations

import random
import time

import gevent
import websocket

from rtcap.loadtests.transports import metrics
from rtcap.loadtests.transports.limits import for_settings
from rtcap.loadtests.transports.stream import StreamUser
from rtcap.targets.adapter_fields import parse_body
from rtcap.loadtests.transports.ws_client import WebSocketClient, WebSocketClosed


class _WebSocketUser(StreamUser):
    """A stream user whose connection is a WebSocket."""

    abstract = True
    stream_errors = (*StreamUser.stream_errors, websocket.WebSocketException, WebSocketClosed)

    def socket_url(self) -> str:
        """The ws:// URL this user connects to (a resume URL after a reconnect, when the adapter has one)."""
        spec = self.adapter.transport(self.transport)
        if spec.resume_url and self.tracker.highest is not None:
            return spec.render_resume_url(self.adapter.base_url, channel=self.channel, cursor=self.tracker.highest)
        return self.adapter.url_for(self.transport, **self.url_values())

    def url_values(self) -> dict[str, str]:
        """Placeholder values for the URL."""
        return {"channel": self.channel}

    def new_client(self) -> WebSocketClient:
        """A new WebSocket client for this user's URL, with the adapter's headers."""
        return WebSocketClient(self.socket_url(), headers=self.adapter.headers, timeout=self.settings.read_timeout,
                               limits=for_settings(self.settings))

    def on_connected(self, client: WebSocketClient) -> None:
        """Send the adapter's subscribe message, if it has one."""
        subscribe = self.adapter.transport(self.transport).render_subscribe(**self.url_values())
        if subscribe is not None:
            client.send_text(subscribe)

    def read(self, client: WebSocketClient) -> None:
        """Hand every message to the adapter's reader until the connection breaks."""
        while True:
            text, received_at, wire_bytes = client.receive()
            self.on_message(text, received_at, wire_bytes)
            self.flush_bytes(client)

    def consume(self, client: WebSocketClient, data: bytes, received_at: float) -> bool:
        """Report the messages in bytes read from the event loop; True if a frame completed."""
        frames = client.reader.frames
        for text, wire_bytes in client.take(data):
            self.on_message(text, received_at, wire_bytes)
        return client.reader.frames > frames

    def on_message(self, text: str, received_at: float, wire_bytes: int) -> None:
        """One text message: its application bytes (every message, control messages included), then its event."""
        metrics.count(self.transport, "payload_bytes", len(text.encode("utf-8")))
        self.on_payload(parse_body(text), received_at, wire_bytes)


class WebSocketListener(_WebSocketUser):
    """Holds one feed connection, reports each event's delivery latency, resumes after its last seq."""

    abstract = True
    transport = "ws"


class WebSocketChatter(_WebSocketUser):
    """Joins a chat room, sends chat messages at `--chat-rate` and measures the room's broadcast latency."""

    abstract = True
    transport = "chat"

    def on_start(self) -> None:
        """Set up the chatter's sender state on top of the connection state."""
        super().on_start()
        self.room = self.settings.chat_room or self.adapter.transport(self.transport).room
        self.sender: gevent.Greenlet | None = None
        self.sent = 0

    def url_values(self) -> dict[str, str]:
        """The room (and channel) fill the URL and the subscribe message."""
        return {"channel": self.channel, "room": self.room}

    def on_connected(self, client: WebSocketClient) -> None:
        """Subscribe, then start sending chat messages."""
        super().on_connected(client)
        if self.send_rate() > 0:
            self.sender = gevent.spawn(self._send_loop, client)

    def send_rate(self) -> float:
        """Messages per second this chatter sends (0: it only listens)."""
        return self.settings.chat_rate

    def next_message(self) -> str:
        """The text of the chatter's next message (number `self.sent`)."""
        spec = self.adapter.transport(self.transport)
        return spec.render_send(self.sent, self.settings.chat_size, **self.url_values())

    def _send_loop(self, client: WebSocketClient) -> None:
        # Random phase, then a steady pace: chatters do not all send in the same instant.
        period = 1.0 / self.send_rate()
        time.sleep(random.uniform(0, period))
        while True:
            self.sent += 1
            try:
                client.send_text(self.next_message())
            except (OSError, websocket.WebSocketException) as error:
                if self.sender is gevent.getcurrent():  # else the connection is being closed on purpose
                    metrics.report_error(self.environment, self.transport, "send", error)
                return
            time.sleep(period)

    def on_disconnected(self) -> None:
        """Stop sending when the connection is gone."""
        if self.sender is not None:
            self.sender.kill(block=False)
            self.sender = None


class WebSocketUser(WebSocketListener):
    """A listener holding one `/ws` feed connection."""


class ChatUser(WebSocketChatter):
    """A chatter in a `/ws/chat` room, sending `--chat-rate` messages per second."""
