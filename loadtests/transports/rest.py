"""The REST side of the RPC comparison: the same operation as a keep-alive GET, paced like the RPC user.

`RestRequester` sends `--request-rate` GETs per second per user on one persistent HTTP/1.1 connection (no
pipelining: a request waits for the previous response, so a slow answer delays the next, charged from its
tick), or back to back with `--request-rate 0`. It sends `If-None-Match` with the last ETag when the
transport is `conditional`: what HTTP caching gives for free and a WebSocket protocol has to reinvent.
"""

from __future__ import annotations

import time

import h11
from locust import User, task

from rtcap.loadtests.transports import metrics
from rtcap.loadtests.transports.pacer import Pacer
from rtcap.loadtests.transports.polling import PollError, bind_http_user


class RestRequester(User):
    """GETs the transport's URL on a fixed schedule over one keep-alive connection; 304 and 200 are successes."""

    abstract = True
    transport = "rest"

    def on_start(self) -> None:
        """Read the options, open nothing yet, and wait for a random phase of the schedule."""
        bind_http_user(self)
        self.bytes = metrics.ByteMeter(self.transport)
        self.etag: str | None = None
        self.pacer = Pacer.with_random_phase(self.settings.request_rate, time.monotonic())
        self.tick = self.pacer.tick
        time.sleep(max(0.0, self.tick - time.monotonic()))

    def wait_time(self) -> float:
        """Seconds until the next tick (skipped ticks are counted as missed)."""
        self.tick, skipped = self.pacer.next(time.monotonic())
        metrics.count(self.transport, "missed_ticks", skipped)
        return max(0.0, self.tick - time.monotonic())

    @task
    def request(self) -> None:
        """One GET for the current tick, conditional on the last ETag."""
        tick = self.tick
        headers = dict(self.adapter.headers)
        if self.etag and self.spec.conditional and self.settings.conditional_get:
            headers["If-None-Match"] = self.etag
        try:
            if self.http.sock is None:
                metrics.report_connect(self.environment, self.transport, self.http.connect())
            response = self.http.get(self.adapter.url_for(self.transport, channel=self.channel), headers)
        except (OSError, h11.ProtocolError) as error:
            self._fire(tick, 0, error)
            return
        finally:
            self.bytes.flush(self.http.byte_counts)
        metrics.count(self.transport, "round_trips", 1)
        metrics.count(self.transport, "payload_bytes", len(response.body))
        if response.status == 200:
            self.etag = response.headers.get("etag")
        self._fire(tick, len(response.body), None if response.status in (200, 304) else PollError(f"HTTP {response.status}"))

    def _fire(self, tick: float, length: int, exception: BaseException | None) -> None:
        # Charged from the tick: a request that had to wait for the previous response counts that wait too.
        self.environment.events.request.fire(
            request_type=self.transport, name=self.name, response_time=max(0.0, (time.monotonic() - tick) * 1000.0),
            response_length=length, exception=exception, context={"transport": self.transport},
        )

    def on_stop(self) -> None:
        """Close the connection."""
        self.http.close()
        self.bytes.flush(self.http.byte_counts)


class RestUser(RestRequester):
    """Sends `--request-rate` `GET /latest` requests per second on one keep-alive connection, with If-None-Match."""
