"""Server-Sent Events: an abstract Locust listener on top of `sse_client.SSEClient`."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import h11

from loadtests import metrics
from loadtests.sse_client import SSEClient, SSEConnectError, StreamClosed
from loadtests.sse_parser import SSEEvent
from loadtests.stream import StreamUser


class SSEListener(StreamUser):
    """Holds one SSE connection, reports each event's delivery latency, reconnects with Last-Event-ID."""

    abstract = True
    transport = "sse"
    path = "/sse"
    stream_errors = (*StreamUser.stream_errors, SSEConnectError, StreamClosed, h11.ProtocolError)

    def on_start(self) -> None:
        """Set up the listener; it has no Last-Event-ID until its first event."""
        super().on_start()
        self.last_event_id: str | None = None

    def stream_url(self) -> str:
        """The SSE URL for this listener's channel."""
        return f"{self.host.rstrip('/')}{self.path}?{urlencode({'channel': self.settings.channel})}"

    def new_client(self) -> SSEClient:
        """A client that resumes after the last event id this listener saw."""
        return SSEClient(self.stream_url(), timeout=self.settings.read_timeout, last_event_id=self.last_event_id)

    def read(self, client: SSEClient) -> None:
        """Report every event until the stream ends."""
        for item, received_at in client.items():
            if isinstance(item, SSEEvent):
                message = json.loads(item.data)
                self.last_event_id = item.id
                metrics.report_delivery(self.environment, self.transport, float(message["ts"]), received_at, item.wire_bytes)
                metrics.track_sequence(self.environment, self.transport, self.tracker, int(message["seq"]))
                self.flush_bytes(client)
