"""Chat presence and typing indicators: many small client messages, each fanned out to a room.

`PresenceUser`s (the presence transport's concrete user; `PresenceChatter` is its abstract base) are put into
rooms of `--room-size` users (ROOM-0, ROOM-1... in the order they start; per load-generating process),
announce themselves once with the adapter's `presence` message, then send typing indicators at `--typing-rate`.
The server stamps each indicator with the room's seq and ts and broadcasts it. Others' indicators are
deliveries (fan-out latency = receive time - server ts); a user's own echo only advances its sequence
accounting. Messages sent and received give messages/s in and out of the server.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from rtcap.loadtests.transports import metrics
from rtcap.loadtests.transports.ws import WebSocketChatter
from rtcap.loadtests.transports.ws_client import WebSocketClient
from rtcap.targets.adapter_fields import FieldError, lookup

_joined = itertools.count()
"""Users started in this process so far: the n-th goes to room n // room size."""


def room_for(base: str, index: int, room_size: int, worker: int | None = None) -> str:
    """The room of the `index`-th user: `base-K` with K = index // room_size (`base-wW-K` on worker W)."""
    if room_size <= 0:
        return base
    prefix = f"{base}-w{worker}" if worker is not None and worker >= 0 else base
    return f"{prefix}-{index // room_size}"


class PresenceChatter(WebSocketChatter):
    """Joins a room of `--room-size` users and sends typing indicators at `--typing-rate`."""

    abstract = True
    transport = "presence"

    def on_start(self) -> None:
        """Pick this user's room and client token, then set up the chatter state."""
        super().on_start()
        self.spec = self.adapter.transport(self.transport)
        worker = getattr(self.environment.runner, "worker_index", None)
        self.room = room_for(self.settings.chat_room or self.spec.room, next(_joined), self.settings.room_size, worker)
        self.client_token = uuid.uuid4().hex[:12]

    def url_values(self) -> dict[str, str]:
        """Room, channel and this user's token fill the URL and the messages."""
        return {"channel": self.channel, "room": self.room, "client": self.client_token}

    def send_rate(self) -> float:
        """Typing indicators per second."""
        return self.settings.typing_rate

    def next_message(self) -> str:
        """The next typing indicator, counted as sent with the room size it goes to."""
        self._count_sent()
        return self.spec.render_text("send", n=self.sent, **self.url_values()) or ""

    def _count_sent(self) -> None:
        metrics.count(self.transport, "messages_sent", 1)
        metrics.count(self.transport, "sent_room_members", max(0, self.settings.room_size))

    def on_connected(self, client: WebSocketClient) -> None:
        """Announce presence once (if the adapter has a presence message), then start typing."""
        announce = self.spec.render_text("presence", **self.url_values())
        if announce is not None:
            client.send_text(announce)
            self._count_sent()
        super().on_connected(client)

    def on_payload(self, message: object, received_at: float, wire_bytes: int, sse_id: str | None = None) -> None:
        """Others' indicators are fan-out deliveries; this user's own only count in its sequence."""
        metrics.count(self.transport, "messages_received", 1)
        if not self._own(message):
            super().on_payload(message, received_at, wire_bytes, sse_id)
            return
        try:
            seq, _ts = self.adapter.extract(self.transport, message)
        except FieldError as error:
            metrics.report_error(self.environment, self.transport, "message", error)
            return
        metrics.track_sequence(self.environment, self.transport, self.tracker, seq)

    def _own(self, message: Any) -> bool:
        return bool(self.spec.sender) and isinstance(message, dict) and self.adapter.is_event(self.transport, message) \
            and lookup(message, self.spec.sender) == self.client_token


class PresenceUser(PresenceChatter):
    """Sends `--typing-rate` typing indicators per second in a `/ws/chat` room of `--room-size` users."""
