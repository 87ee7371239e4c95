"""NDJSON streams: an abstract Locust listener on top of `ndjson_client.NDJSONClient`, and the concrete user.

Each line is read as the SSE listener reads an event's data (JSON when it is JSON, else text the adapter will
refuse as a malformed message, which is an error but not a reason to drop the connection), and recorded the same
way: latency = receive time - the event's ts, seq into the subscriber's tracker, the line's bytes as payload,
every socket byte (head, chunk framing, line breaks, keep-alives) as wire bytes.

A stream past a limit (an over-long line, a head too slow, no line for `--read-timeout`, a redirect) raises
LimitExceeded, a ValueError: `StreamUser` reports it against the target and reconnects after its backoff.
NDJSON has no Last-Event-ID: a listener resumes through the adapter's `resume_url` with {cursor} = the highest
seq it received (as a WebSocket listener does); without one a reconnect starts live and a gap counts as lost.
"""

from __future__ import annotations

from typing import Any

import h11

from rtcap.targets.adapter_fields import parse_body
from rtcap.loadtests.transports import metrics
from rtcap.loadtests.transports.limits import for_settings
from rtcap.loadtests.transports.ndjson_client import NDJSONClient, NDJSONConnectError, StreamClosed
from rtcap.loadtests.transports.stream import StreamUser


class NDJSONListener(StreamUser):
    """Holds one NDJSON stream, reports each event's delivery latency, resumes after its highest seq."""

    abstract = True
    transport = "ndjson"
    stream_errors = (*StreamUser.stream_errors, NDJSONConnectError, StreamClosed, h11.ProtocolError)

    def stream_url(self) -> str:
        """The adapter's resume URL after the highest seq received, once there is one and the adapter has it;
        else the transport's URL."""
        spec = self.adapter.transport(self.transport)
        if spec.resume_url and self.tracker.highest is not None:
            return spec.render_resume_url(self.adapter.base_url, channel=self.channel, cursor=self.tracker.highest)
        return self.adapter.url_for(self.transport, channel=self.channel)

    def new_client(self) -> NDJSONClient:
        """A client for this listener's next connection, with the adapter's headers and the users' limits."""
        return NDJSONClient(self.stream_url(), headers=self.adapter.headers, timeout=self.settings.read_timeout,
                            limits=for_settings(self.settings))

    def read(self, client: NDJSONClient) -> None:
        """Report every line until the stream ends."""
        for line, received_at in client.items():
            self.on_line(line, received_at)
            self.flush_bytes(client)

    def consume(self, client: NDJSONClient, data: bytes, received_at: float) -> bool:
        """Report the lines in bytes read from the event loop; True if a line (or keep-alive) completed."""
        lines = client.take(data)
        for line in lines:
            self.on_line(line, received_at)
        return bool(lines)

    def on_line(self, line: Any, received_at: float) -> None:
        """One line: its application bytes (the JSON text; its line break is framing), counted for every line
        whether or not the adapter accepts it as an event, then the event."""
        metrics.count(self.transport, "payload_bytes", len(line.data))
        self.on_payload(parse_body(line.data), received_at, line.wire_bytes)


class NDJSONUser(NDJSONListener):
    """A listener holding one `/ndjson` stream."""
