"""REST polling: an abstract Locust viewer that polls `/poll` with a since-cursor and conditional GETs."""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import urlsplit

from locust import FastHttpUser, task

from loadtests import metrics
from loadtests.options import Settings
from loadtests.seqtrack import SeqTracker
from loadtests.targeting import adapter_for, parse_body
from targets.adapter_fields import FieldError


def http_message_bytes(start_line: str, headers: Any, body_length: int) -> int:
    """Bytes of an HTTP/1.1 message: start line, header lines, blank line and body (no chunk framing)."""
    head = len(start_line) + 2 + 2
    for name, value in headers.items():
        head += len(str(name)) + 2 + len(str(value)) + 2
    return head + body_length


class PollingViewer(FastHttpUser):
    """Polls for new events every `--poll-interval` seconds; staleness of each event is its delivery latency."""

    abstract = True
    transport = "poll"

    def context(self) -> dict[str, str]:
        """Tag this viewer's HTTP requests with its transport."""
        return {"transport": self.transport}

    def on_start(self) -> None:
        """Read the options, wait a random phase so viewers do not poll in lockstep, and sync the cursor."""
        self.settings = Settings.of(self.environment)
        self.adapter = adapter_for(self.environment)
        self.spec = self.adapter.transport(self.transport)
        self.channel = self.settings.channel or self.adapter.channel
        self.tracker = SeqTracker()
        self.cursor: Any = None
        self.etag: str | None = None
        self.last_modified: str | None = None
        interval = self.settings.poll_interval
        self.next_poll = time.time() + random.uniform(0, interval)
        self._sleep_until_due()

    def wait_time(self) -> float:
        """Pace polls on a fixed schedule from the first one, not from the end of the last request."""
        interval = self.settings.poll_interval
        self.next_poll += interval
        late = time.time() - self.next_poll
        if late > interval:
            # The viewer fell more than one tick behind: skip the missed ticks instead of bursting.
            self.next_poll += interval * int(late // interval)
        return max(0.0, self.next_poll - time.time())

    def _sleep_until_due(self) -> None:
        time.sleep(max(0.0, self.next_poll - time.time()))

    @task
    def poll(self) -> None:
        """One poll: GET events after the cursor, If-None-Match the last ETag."""
        url = self.adapter.url_for(self.transport, channel=self.channel, cursor="0" if self.cursor is None else self.cursor)
        headers = dict(self.adapter.headers)
        if self.settings.conditional_get and self.spec.conditional:
            # Both validators, as a browser sends them: some servers key their cursor on either.
            if self.etag:
                headers["If-None-Match"] = self.etag
            if self.last_modified:
                headers["If-Modified-Since"] = self.last_modified
        name = urlsplit(self.spec.url).path or "/"
        with self.client.get(url, headers=headers, name=name, catch_response=True) as response:
            received_at = time.time()
            status = response.status_code
            if status not in (200, 304):
                response.failure(f"HTTP {status}")
                return
            response.success()
            self._count_bytes(url, headers, response)
            if status == 200:
                self.etag = response.headers.get("ETag")
                self.last_modified = response.headers.get("Last-Modified")
                self._on_body(response.content or b"", received_at)

    def _on_body(self, body: bytes, received_at: float) -> None:
        payload = parse_body(body)
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

    def on_stop(self) -> None:
        """Report this viewer's sequence accounting when Locust stops it."""
        metrics.report_subscriber(self.transport, self.tracker)

    def _count_bytes(self, url: str, headers: dict[str, str], response: Any) -> None:
        # geventhttpclient does not expose its socket, so bytes are computed from the messages:
        # exact for our own header lines, approximate for the few the HTTP client adds itself.
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        client_headers = {"Host": parts.netloc, "User-Agent": "rtcap", "Accept-Encoding": "identity"}
        client_headers.update(headers)
        sent = http_message_bytes(f"GET {target} HTTP/1.1", client_headers, 0)
        body = len(response.content or b"")
        received = http_message_bytes(f"HTTP/1.1 {response.status_code} XX", response.headers or {}, body)
        metrics.count(self.transport, "bytes_sent", sent)
        metrics.count(self.transport, "bytes_received", received)
