"""Server-Sent Events: a streaming client over a byte-counting socket, and an abstract Locust listener."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import h11
from locust import User, task

from loadtests import metrics
from loadtests.backoff import Backoff
from loadtests.netio import CountingSocket, open_counting_connection, split_url
from loadtests.options import Settings
from loadtests.seqtrack import SeqTracker
from loadtests.sse_parser import SSEComment, SSEEvent, SSEParser, SSERetry


class SSEConnectError(Exception):
    """The server did not answer with a 200 text/event-stream."""


class StreamClosed(Exception):
    """The server ended the event stream."""


class SSEClient:
    """One SSE connection: `connect()` sends the request and reads the head, `items()` yields parsed items."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.sock: CountingSocket | None = None
        self.parser = SSEParser()
        self._http = h11.Connection(h11.CLIENT)
        self._body: list[bytes] = []

    @property
    def bytes_sent(self) -> int:
        """Bytes this connection has sent, request head included."""
        return self.sock.bytes_sent if self.sock else 0

    @property
    def bytes_received(self) -> int:
        """Bytes this connection has received, response head and chunk framing included."""
        return self.sock.bytes_received if self.sock else 0

    def connect(self, last_event_id: str | None = None) -> float:
        """Open the stream; return milliseconds until the response head arrived."""
        started = time.perf_counter()
        host, port, path, _secure = split_url(self.url)
        self.sock = open_counting_connection(self.url, self.timeout)
        headers = [("Host", f"{host}:{port}"), ("Accept", "text/event-stream"), ("Cache-Control", "no-cache")]
        headers += list(self.headers.items())
        if last_event_id is not None:
            headers.append(("Last-Event-ID", last_event_id))
            self.parser.last_event_id = last_event_id
        self.sock.sendall(self._http.send(h11.Request(method="GET", target=path, headers=headers)))
        self.sock.sendall(self._http.send(h11.EndOfMessage()))
        while True:
            event = self._next_http_event()
            if isinstance(event, h11.Response):
                break
        content_type = dict(event.headers).get(b"content-type", b"").decode("latin-1")
        if event.status_code != 200 or not content_type.startswith("text/event-stream"):
            raise SSEConnectError(f"HTTP {event.status_code} ({content_type or 'no content type'}) from {self.url}")
        return (time.perf_counter() - started) * 1000.0

    def items(self) -> Iterator[tuple[SSEEvent | SSEComment | SSERetry, float]]:
        """Yield each parsed item with its receive time (unix seconds) until the stream ends."""
        while True:
            event = self._next_http_event()
            if isinstance(event, h11.Data):
                received_at = time.time()
                for item in self.parser.feed(bytes(event.data)):
                    yield item, received_at
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                raise StreamClosed(f"server ended the stream from {self.url}")

    def _next_http_event(self) -> h11.Event:
        assert self.sock is not None, "connect() first"
        while True:
            event = self._http.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = self.sock.recv(65536)
            self._http.receive_data(data)
            if not data and self._http.their_state is not h11.DONE:
                raise StreamClosed(f"connection to {self.url} closed")

    def close(self) -> None:
        """Close the socket (safe to call twice)."""
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass


class SSEListener(User):
    """Holds one SSE connection, reports each event's delivery latency, reconnects with Last-Event-ID."""

    abstract = True
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
