"""Signalling: the WebSocket only says "changed", then the client fetches the data over REST.

`SignallingSubscriber` holds the notification WebSocket (reconnecting like any stream user) and one keep-alive
HTTP connection for the fetches. On a notification whose seq it does not hold yet, it GETs the events after
its cursor; notifications that arrive while a fetch runs and announce nothing new cost no fetch (they are
coalesced, as a real client would). Delivery latency runs from the event's publish ts to the moment the
fetched event is in hand (notify + fetch); bytes count both sockets, so bytes per event is WS + HTTP.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import h11

from rtcap.loadtests.transports import metrics
from rtcap.loadtests.transports.http_client import HTTPConnection, HTTPResponse
from rtcap.loadtests.transports.polling import PollError
from rtcap.targets.adapter_fields import parse_body
from rtcap.loadtests.transports.ws import _WebSocketUser
from rtcap.loadtests.transports.ws_client import WebSocketClient
from rtcap.targets.adapter_fields import FieldError


class SignallingSubscriber(_WebSocketUser):
    """Listens for "changed" notifications and fetches the announced events over REST."""

    abstract = True
    transport = "signal"

    def on_start(self) -> None:
        """Set up the fetch connection and cursor on top of the stream state."""
        super().on_start()
        self.spec = self.adapter.transport(self.transport)
        self.http = HTTPConnection(self.adapter.base_url, timeout=self.settings.read_timeout,
                                   follow_redirects=self.adapter.follow_redirects)
        self.http_bytes = metrics.ByteMeter(self.transport)
        self.cursor: int | str | None = None  # the last seq fetched
        self.fetch_name = urlsplit(self.spec.fetch or "").path or "/"

    def read(self, client: WebSocketClient) -> None:
        """Fetch after every notification that announces something not yet in hand."""
        while True:
            text, _received_at, _wire = client.receive()
            metrics.count(self.transport, "payload_bytes", len(text.encode("utf-8")))
            self.flush_bytes(client)
            message = parse_body(text)
            if not self.spec.is_notice(message):
                continue
            metrics.count(self.transport, "notifications", 1)
            try:
                announced = self.spec.notice_seq(message)
            except FieldError as error:
                metrics.report_error(self.environment, self.transport, "message", error)
                continue
            if announced is not None and self.cursor is not None and not announced > self.cursor:
                continue  # a fetch already brought it
            self.fetch(announced)

    def fetch(self, announced: int | str | None) -> None:
        """GET the events after the cursor and report each new one as delivered when it is in hand."""
        if self.cursor is not None:
            since: int | str = self.cursor
        else:
            # First fetch: only the announced event onwards; older buffered ones are not deliveries.
            since = announced - 1 if isinstance(announced, int) else 0
        url = self.spec.render_fetch(self.adapter.base_url, channel=self.channel, cursor=since)
        if self.http.sock is None:
            started = time.perf_counter()
            try:
                metrics.report_connect(self.environment, self.transport, self.http.connect())
            except OSError as error:
                elapsed = (time.perf_counter() - started) * 1000.0
                metrics.report_connect(self.environment, self.transport, elapsed, error)
                return
        try:
            response = self.http.get(url, dict(self.adapter.headers))
        except (OSError, h11.ProtocolError) as error:
            metrics.report_error(self.environment, self.transport, self.fetch_name, error)
            return  # the next notification fetches from the same cursor: nothing is lost
        finally:
            self.http_bytes.flush(self.http.byte_counts)
        received_at = time.time()
        metrics.count(self.transport, "round_trips", 1)
        metrics.count(self.transport, "payload_bytes", len(response.body))
        failed = None if response.status == 200 else PollError(f"HTTP {response.status}")
        self.environment.events.request.fire(
            request_type=self.transport, name=self.fetch_name, response_time=response.elapsed_ms,
            response_length=len(response.body), exception=failed, context={"transport": self.transport},
        )
        if failed is None:
            self._deliver(response, received_at, announced)

    def _deliver(self, response: HTTPResponse, received_at: float, announced: int | str | None) -> None:
        try:
            body = parse_body(response.body)
            events = [e for e in self.spec.events_in(body) if self.adapter.is_event(self.transport, e)]
            first_fetch = self.cursor is None
            last = None
            for position, event in enumerate(events):
                seq, publish_ts = self.adapter.extract(self.transport, event)
                last = seq
                if first_fetch and announced is None and position < len(events) - 1:
                    continue  # no seq announced: the newest event is the news, the rest is history
                metrics.report_event(self.environment, self.transport, self.tracker, seq, publish_ts, received_at, 0)
            self.cursor = self.spec.cursor_in(body, last if last is not None else self.cursor)
        except FieldError as error:
            metrics.report_error(self.environment, self.transport, "message", error)

    def on_stop(self) -> None:
        """Close the fetch connection too."""
        self.http.close()
        self.http_bytes.flush(self.http.byte_counts)
        super().on_stop()


class SignalUser(SignallingSubscriber):
    """Hears "changed" on `/ws?notify=1`, then fetches the events over REST (`/poll?since=N`, keep-alive)."""
