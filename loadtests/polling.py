"""REST polling: an abstract Locust viewer polling on a fixed schedule with a cursor and conditional GETs.

It uses `http_client.HTTPConnection` (one keep-alive connection per viewer, like a browser tab) so that the
bytes it reports are the bytes its socket moved, and fires Locust request events itself.
"""

from __future__ import annotations

import random
import time
from urllib.parse import urlsplit

import h11
from locust import User, task

from loadtests import metrics
from loadtests.http_client import HTTPConnection, HTTPResponse
from loadtests.options import Settings
from loadtests.seqtrack import SeqTracker
from loadtests.targeting import adapter_for, parse_body
from targets.adapter_fields import FieldError


class PollError(Exception):
    """A poll answered with a status other than 200 or 304."""


class PollingViewer(User):
    """Polls for new events every `--poll-interval` seconds; staleness of each event is its delivery latency."""

    abstract = True
    transport = "poll"

    def on_start(self) -> None:
        """Read the options, wait a random phase so viewers do not poll in lockstep, and sync the cursor."""
        self.settings = Settings.of(self.environment)
        self.adapter = adapter_for(self.environment)
        self.spec = self.adapter.transport(self.transport)
        self.channel = self.settings.channel or self.adapter.channel
        self.http = HTTPConnection(self.adapter.base_url, timeout=self.settings.read_timeout)
        self.name = urlsplit(self.spec.url).path or "/"
        self.tracker = SeqTracker()
        self.cursor: object = None
        self.etag: str | None = None
        self.last_modified: str | None = None
        self._reported = (0, 0)
        interval = self.settings.poll_interval
        self.next_poll = time.time() + random.uniform(0, interval)
        time.sleep(max(0.0, self.next_poll - time.time()))

    def wait_time(self) -> float:
        """Pace polls on a fixed schedule from the first one, not from the end of the last request."""
        interval = self.settings.poll_interval
        self.next_poll += interval
        late = time.time() - self.next_poll
        if late > interval:
            # The viewer fell more than one tick behind: skip the missed ticks instead of bursting.
            self.next_poll += interval * int(late // interval)
        return max(0.0, self.next_poll - time.time())

    @task
    def poll(self) -> None:
        """One poll: GET events after the cursor, with the validators of the last answer."""
        url = self.adapter.url_for(self.transport, channel=self.channel, cursor="0" if self.cursor is None else self.cursor)
        headers = dict(self.adapter.headers)
        if self.settings.conditional_get and self.spec.conditional:
            # Both validators, as a browser sends them: some servers key their cursor on either.
            if self.etag:
                headers["If-None-Match"] = self.etag
            if self.last_modified:
                headers["If-Modified-Since"] = self.last_modified
        if self.http.sock is None:
            self._connect()
        started = time.perf_counter()
        try:
            response = self.http.get(url, headers)
        except (OSError, h11.ProtocolError) as error:
            self._fire((time.perf_counter() - started) * 1000.0, 0, error)
            return
        finally:
            self._flush_bytes()
        received_at = time.time()
        error = None if response.status in (200, 304) else PollError(f"HTTP {response.status}")
        self._fire(response.elapsed_ms, len(response.body), error)
        if response.status == 200:
            self.etag = response.headers.get("etag")
            self.last_modified = response.headers.get("last-modified")
            self._on_body(response, received_at)

    def _connect(self) -> None:
        started = time.perf_counter()
        try:
            metrics.report_connect(self.environment, self.transport, self.http.connect())
        except OSError as error:
            metrics.report_connect(self.environment, self.transport, (time.perf_counter() - started) * 1000.0, error)
            raise

    def _fire(self, elapsed_ms: float, length: int, exception: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type="GET", name=self.name, response_time=elapsed_ms, response_length=length,
            exception=exception, context={"transport": self.transport},
        )

    def _on_body(self, response: HTTPResponse, received_at: float) -> None:
        payload = parse_body(response.body)
        try:
            events = [e for e in self.spec.events_in(payload) if self.adapter.is_event(self.transport, e)]
            first_sync = self.cursor is None
            last_seq = None
            for event in events:
                seq, publish_ts = self.adapter.extract(self.transport, event)
                last_seq = seq
                if not first_sync:
                    # The first poll only learns where the stream is: old buffered events are not deliveries.
                    metrics.report_event(self.environment, self.transport, self.tracker, seq, publish_ts, received_at, 0)
            self.cursor = self.spec.cursor_in(payload, last_seq if last_seq is not None else self.cursor)
        except FieldError as error:
            metrics.report_error(self.environment, self.transport, "message", error)

    def _flush_bytes(self) -> None:
        sent, received = self.http.byte_counts
        metrics.count(self.transport, "bytes_sent", sent - self._reported[0])
        metrics.count(self.transport, "bytes_received", received - self._reported[1])
        self._reported = (sent, received)

    def on_stop(self) -> None:
        """Close the connection and report this viewer's sequence accounting."""
        self.http.close()
        metrics.report_subscriber(self.transport, self.tracker)
