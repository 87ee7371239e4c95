"""What every long-lived subscriber shares: connect, read until the stream breaks, back off, resume.

Transport modules subclass `StreamUser` with a client factory and a read loop; the lifecycle, the
reconnect backoff, the open-connection gauge, the byte accounting and error reporting live here once.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from locust import User, between, task

from rtcap.loadtests.transports import metrics
from rtcap.loadtests.transports.backoff import STABLE_S, Backoff
from rtcap.loadtests.transports.crowd import Crowd
from rtcap.loadtests.generator.options import Settings
from rtcap.loadtests.transports.seqtrack import SeqTracker
from rtcap.loadtests.generator.targeting import adapter_for
from rtcap.targets import transports as registry
from rtcap.targets.adapter_fields import FieldError


class StreamClient(Protocol):
    """The little a stream user needs of a client connection."""

    def connect(self) -> float:
        """Open the connection; return milliseconds until the server answered."""

    @property
    def byte_counts(self) -> tuple[int, int]:
        """(bytes sent, bytes received) so far."""

    def close(self) -> None:
        """Close the connection."""


class StreamUser(User):
    """Holds one subscription open for the whole test, reconnecting after a jittered backoff."""

    abstract = True
    # The task only returns after an unexpected error: pause before Locust runs it again.
    wait_time = between(1, 3)
    transport = "stream"
    stream_errors: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError)
    """Exceptions that mean "this connection is broken": reported, then the user reconnects."""
    connection_state: tuple[str, ...] = ("client", "tracker", "_reported")
    """The attributes that belong to one connection: a crowd (--held-per-user) keeps them per connection."""

    def on_start(self) -> None:
        """Read the options and set up this user's state."""
        self.settings = Settings.of(self.environment)
        self.adapter = adapter_for(self.environment)
        self.channel = self.settings.channel or self.adapter.channel
        self.tracker = SeqTracker()
        self.backoff = Backoff(cap=self.settings.reconnect_max)
        self.client: Any = None
        self._reported = (0, 0)
        self.held_per_user = self.settings.held_per_user
        if self.held_per_user > 1 and not registry.lookup(self.transport).crowd:
            raise ValueError(f"--held-per-user {self.held_per_user}: {self.transport} users hold one connection each "
                             f"(only the {', '.join(r.name for r in registry.REGISTRY if r.crowd)} listeners hold several)")

    def new_client(self) -> StreamClient:
        """A new, unconnected client for this user's next connection."""
        raise NotImplementedError

    def read(self, client: Any) -> None:
        """Receive until the stream breaks; call `flush_bytes(client)` as messages arrive."""
        raise NotImplementedError

    def consume(self, client: Any, data: bytes, received_at: float) -> bool:
        """Parse and report bytes read from the event loop (a crowd's connection); True if they completed an item
        (the stream is alive). Only transports whose registry record says `crowd` implement it."""
        raise NotImplementedError

    def on_connected(self, client: Any) -> None:
        """Hook: say what the server needs after connecting (subscribe...)."""

    def on_disconnected(self) -> None:
        """Hook: stop whatever runs beside the connection."""

    @task
    def hold(self) -> None:
        """Stay connected: reconnect after a jittered backoff whenever the connection breaks.

        Only a connection that stayed up STABLE_S resets the backoff: a server that accepts and drops every
        connection at once must not get a reconnect storm (several per second per user) from its own failure.
        """
        if self.held_per_user > 1:
            Crowd(self, self.held_per_user).run()  # holds its connections until Locust stops the user
        while True:
            began = time.monotonic()
            if self._session() and time.monotonic() - began >= STABLE_S:
                self.backoff.reset()
            time.sleep(self.backoff.next_delay())

    def _session(self) -> bool:
        client = self.new_client()
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
            # The handshake's bytes belong to the second it happened in, not to the first message's.
            self.flush_bytes(client)
            self.read(client)
            return True
        except self.stream_errors as error:
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
            client.close()  # first: a WebSocket close handshake moves bytes too
            self.flush_bytes(client)

    def on_payload(self, message: object, received_at: float, wire_bytes: int, sse_id: str | None = None) -> None:
        """Report one received message if the adapter says it is an event; a malformed one is an error, not a
        reason to drop the connection."""
        try:
            if not self.adapter.is_event(self.transport, message):
                return
            seq, publish_ts = self.adapter.extract(self.transport, message, sse_id)
        except FieldError as error:
            metrics.report_error(self.environment, self.transport, "message", error)
            return
        metrics.report_event(self.environment, self.transport, self.tracker, seq, publish_ts, received_at, wire_bytes)

    def flush_bytes(self, client: StreamClient) -> None:
        """Report the bytes moved since the last flush, so each second of the timeline gets its share."""
        sent, received = client.byte_counts
        metrics.count(self.transport, "bytes_sent", sent - self._reported[0])
        metrics.count(self.transport, "bytes_received", received - self._reported[1])
        self._reported = (sent, received)

    def on_stop(self) -> None:
        """Close the connection when Locust stops this user, and report its sequence accounting."""
        if self.client is not None:
            self.client.close()
        metrics.report_subscriber(self.transport, self.tracker)
        metrics.flush_deliveries()  # what this user received is in Locust's statistics before the test stops
