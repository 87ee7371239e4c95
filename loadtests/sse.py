"""Server-Sent Events: an abstract Locust listener on top of `sse_client.SSEClient`."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import h11
from locust import User, between, task

from loadtests import metrics
from loadtests.backoff import Backoff
from loadtests.options import Settings
from loadtests.seqtrack import SeqTracker
from loadtests.sse_client import SSEClient, SSEConnectError, StreamClosed
from loadtests.sse_parser import SSEEvent


class SSEListener(User):
    """Holds one SSE connection, reports each event's delivery latency, reconnects with Last-Event-ID."""

    abstract = True
    # The task only returns after an unexpected error: pause before Locust runs it again.
    wait_time = between(1, 3)
    transport = "sse"
    path = "/sse"

    def on_start(self) -> None:
        """Read the options and set up this listener's state."""
        self.settings = Settings.of(self.environment)
        self.tracker = SeqTracker()
        self.backoff = Backoff(cap=self.settings.reconnect_max)
        self.last_event_id: str | None = None
        self.client: SSEClient | None = None

    def stream_url(self) -> str:
        """The SSE URL for this listener's channel."""
        return f"{self.host.rstrip('/')}{self.path}?{urlencode({'channel': self.settings.channel})}"

    @task
    def listen(self) -> None:
        """Stay subscribed: connect, read until the stream breaks, wait a jittered backoff, resume."""
        while True:
            if self._session():
                self.backoff.reset()
            self.wait_backoff()

    def wait_backoff(self) -> None:
        """Sleep before reconnecting (gevent-friendly)."""
        time.sleep(self.backoff.next_delay())

    def _session(self) -> bool:
        client = SSEClient(self.stream_url(), timeout=self.settings.read_timeout)
        self.client = client
        self._reported = (0, 0)
        connected = False
        started = time.perf_counter()
        try:
            connect_ms = client.connect(self.last_event_id)
            connected = True
            metrics.open_connections[self.transport] += 1
            metrics.report_connect(self.environment, self.transport, connect_ms)
            for item, received_at in client.items():
                if isinstance(item, SSEEvent):
                    self._on_event(item, received_at)
                    self._flush_bytes(client)
            return True
        except (OSError, SSEConnectError, StreamClosed, h11.ProtocolError, ValueError, KeyError) as error:
            elapsed = (time.perf_counter() - started) * 1000.0
            if connected:
                metrics.report_error(self.environment, self.transport, "stream", error, elapsed)
            else:
                metrics.report_connect(self.environment, self.transport, elapsed, error)
            return connected
        finally:
            if connected:
                metrics.open_connections[self.transport] -= 1
            self._flush_bytes(client)
            client.close()

    def _flush_bytes(self, client: SSEClient) -> None:
        # Report byte counts as they grow, so each second of the timeline gets its own share.
        sent, received = client.bytes_sent, client.bytes_received
        metrics.count(self.transport, "bytes_sent", sent - self._reported[0])
        metrics.count(self.transport, "bytes_received", received - self._reported[1])
        self._reported = (sent, received)

    def _on_event(self, item: SSEEvent, received_at: float) -> None:
        message = json.loads(item.data)
        self.last_event_id = item.id
        metrics.report_delivery(self.environment, self.transport, float(message["ts"]), received_at, item.wire_bytes)
        metrics.track_sequence(self.environment, self.transport, self.tracker, int(message["seq"]))

    def on_stop(self) -> None:
        """Close the stream when Locust stops this user."""
        if self.client is not None:
            self.client.close()
