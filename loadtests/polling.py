"""REST polling: an abstract Locust viewer that polls `/poll` with a since-cursor and conditional GETs."""

from __future__ import annotations

import json
import random
import time
from typing import Any
from urllib.parse import urlencode

from locust import FastHttpUser, task

from loadtests import metrics
from loadtests.options import Settings
from loadtests.seqtrack import SeqTracker


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
    path = "/poll"

    def context(self) -> dict[str, str]:
        """Tag this viewer's HTTP requests with its transport."""
        return {"transport": self.transport}

    def on_start(self) -> None:
        """Read the options, wait a random phase so viewers do not poll in lockstep, and sync the cursor."""
        self.settings = Settings.of(self.environment)
        self.tracker = SeqTracker()
        self.cursor: int | None = None
        self.etag: str | None = None
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
        query = {"channel": self.settings.channel}
        if self.cursor is not None:
            query["since"] = str(self.cursor)
        headers = {}
        if self.etag and self.settings.conditional_get:
            headers["If-None-Match"] = self.etag
        url = f"{self.path}?{urlencode(query)}"
        with self.client.get(url, headers=headers, name=self.path, catch_response=True) as response:
            received_at = time.time()
            status = response.status_code
            if status not in (200, 304):
                response.failure(f"HTTP {status}")
                return
            response.success()
            self._count_bytes(url, headers, response)
            if status == 200:
                self._on_body(response.content or b"", response.headers.get("ETag"), received_at)

    def _on_body(self, body: bytes, etag: str | None, received_at: float) -> None:
        payload = json.loads(body)
        self.etag = etag
        events = payload.get("events", [])
        if self.cursor is None:
            # The first poll only learns where the stream is: old buffered events are not deliveries.
            self.cursor = int(payload.get("seq", 0))
            return
        wire_share = 0
        for event in events:
            metrics.report_delivery(self.environment, self.transport, float(event["ts"]), received_at, wire_share)
            metrics.track_sequence(self.environment, self.transport, self.tracker, int(event["seq"]))
        self.cursor = max(self.cursor, int(payload.get("seq", self.cursor)))

    def _count_bytes(self, url: str, headers: dict[str, str], response: Any) -> None:
        # geventhttpclient does not expose its socket, so bytes are computed from the messages:
        # exact for our own header lines, approximate for the few the HTTP client adds itself.
        client_headers = {"Host": self.host.split("://", 1)[-1], "User-Agent": "rtcap", "Accept-Encoding": "identity"}
        client_headers.update(headers)
        sent = http_message_bytes(f"GET {url} HTTP/1.1", client_headers, 0)
        body = len(response.content or b"")
        received = http_message_bytes(f"HTTP/1.1 {response.status_code} XX", response.headers or {}, body)
        metrics.count(self.transport, "bytes_sent", sent)
        metrics.count(self.transport, "bytes_received", received)
