"""Server-Sent Events: an abstract Locust listener on top of `sse_client.SSEClient`, and `SSEUser`, the sse
transport's concrete user.

A stream past a limit (an oversized line or event, a head too slow, nothing parsed for `--read-timeout`, a
redirect) raises LimitExceeded, a ValueError: `StreamUser` reports it against the target and reconnects.
"""

from __future__ import annotations

import h11

from rtcap.loadtests.transports import metrics
from rtcap.loadtests.transports.limits import for_settings
from rtcap.loadtests.transports.sse_client import SSEClient, SSEConnectError, StreamClosed
from rtcap.loadtests.transports.sse_parser import SSEEvent
from rtcap.loadtests.transports.stream import StreamUser
from rtcap.targets.adapter_fields import parse_body


class SSEListener(StreamUser):
    """Holds one SSE connection, reports each event's delivery latency, reconnects with Last-Event-ID."""

    abstract = True
    transport = "sse"
    stream_errors = (*StreamUser.stream_errors, SSEConnectError, StreamClosed, h11.ProtocolError)
    connection_state = (*StreamUser.connection_state, "last_event_id")

    def on_start(self) -> None:
        """Set up the listener; it has no Last-Event-ID until its first event."""
        super().on_start()
        self.last_event_id: str | None = None

    def new_client(self) -> SSEClient:
        """A client for the adapter's SSE URL that resumes after the last event id this listener saw."""
        url = self.adapter.url_for(self.transport, channel=self.channel)
        return SSEClient(url, headers=self.adapter.headers, timeout=self.settings.read_timeout,
                         last_event_id=self.last_event_id, limits=for_settings(self.settings))

    def read(self, client: SSEClient) -> None:
        """Report every event until the stream ends."""
        for item, received_at in client.items():
            if isinstance(item, SSEEvent):
                self.on_event(item, received_at)
                self.flush_bytes(client)

    def consume(self, client: SSEClient, data: bytes, received_at: float) -> bool:
        """Report the events in bytes read from the event loop; True if an item (event, comment) completed."""
        items = client.take(data)
        for item in items:
            if isinstance(item, SSEEvent):
                self.on_event(item, received_at)
        return bool(items)

    def on_event(self, item: SSEEvent, received_at: float) -> None:
        """One event: remember its id for Last-Event-ID, count its application bytes (the data value an
        EventSource hands the page; field names and line breaks are framing), then report it."""
        self.last_event_id = item.id
        metrics.count(self.transport, "payload_bytes", len(item.data.encode("utf-8")))
        self.on_payload(parse_body(item.data), received_at, item.wire_bytes, item.id)


class SSEUser(SSEListener):
    """A listener holding one `/sse` stream."""
