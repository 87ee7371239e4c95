"""Per-second timeline of what the clients measured, per transport, with exact latency histograms.

Locust rounds response times into buckets; here each second keeps an HdrHistogram (microseconds,
3 significant digits) so that any window of seconds can later be merged into exact percentiles.
The timeline is written as JSON lines, one per (second, transport), for the collect stage to join
with the step windows and the target's resource samples.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import gevent
from hdrh.histogram import HdrHistogram

from loadtests import metrics
from loadtests.timeline import HIGHEST_US, LOWEST_US, encode_histogram, new_histogram


@dataclass
class Second:
    """What one transport's clients measured during one second."""

    delivery: HdrHistogram = field(default_factory=new_histogram)
    connect: HdrHistogram = field(default_factory=new_histogram)
    delivered: int = 0
    requests: int = 0
    connects: int = 0
    errors: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    open_connections: int = 0

    def to_json(self, second: int, transport: str) -> dict[str, Any]:
        """The JSON line for this second."""
        return {
            "t": second,
            "transport": transport,
            "delivered": self.delivered,
            "requests": self.requests,
            "connects": self.connects,
            "errors": self.errors,
            "open_connections": self.open_connections,
            **{name: value for name, value in sorted(self.counters.items())},
            "delivery_hist": encode_histogram(self.delivery) if self.delivered else None,
            "connect_hist": encode_histogram(self.connect) if self.connect.get_total_count() else None,
        }


class TimelineRecorder:
    """Listens to request events and stream counters; flushes finished seconds to a JSON-lines file."""

    def __init__(self, environment: Any, path: Path) -> None:
        self.environment = environment
        self.path = path
        self.seconds: dict[tuple[int, str], Second] = {}
        self._file: TextIO | None = None
        self._sampler: gevent.Greenlet | None = None
        self.subscribers: list[dict[str, Any]] = []
        environment.events.request.add_listener(self.on_request)
        metrics.stream_counters.add_listener(self.on_counter)
        metrics.subscriber_closed.add_listener(self.on_subscriber)

    def start(self) -> None:
        """Start the once-a-second greenlet that samples open connections and flushes old seconds."""
        if self._sampler is None:
            self._sampler = gevent.spawn(self._tick_loop)

    def _bucket(self, transport: str) -> Second:
        key = (int(time.time()), transport)
        bucket = self.seconds.get(key)
        if bucket is None:
            bucket = self.seconds[key] = Second()
        return bucket

    def on_request(self, request_type: str, name: str, response_time: float, exception: Any = None,
                   context: dict | None = None, **_kwargs: Any) -> None:
        """Account for one Locust request event."""
        transport = (context or {}).get("transport") or str(request_type).lower()
        bucket = self._bucket(transport)
        if name == metrics.SEQUENCE:
            return  # counted through stream counters; not an error of the transport itself
        micros = max(LOWEST_US, min(HIGHEST_US, int(round((response_time or 0.0) * 1000))))
        if exception is not None:
            bucket.errors += 1
        if name == metrics.DELIVERY:
            bucket.delivered += 1
            bucket.delivery.record_value(micros)
        elif name == metrics.RECEIVED:
            bucket.delivered += 1  # counted for throughput; no publish time, so no latency
        elif name == metrics.CONNECT:
            bucket.connects += 1
            if exception is None:
                bucket.connect.record_value(micros)
        else:
            bucket.requests += 1

    def on_counter(self, transport: str, name: str, value: int, **_kwargs: Any) -> None:
        """Account for a stream counter increment."""
        counters = self._bucket(transport).counters
        counters[name] = counters.get(name, 0) + value

    def on_subscriber(self, transport: str, summary: dict[str, Any], **_kwargs: Any) -> None:
        """Keep one stopped subscriber's accounting for subscribers.jsonl."""
        self.subscribers.append({"transport": transport, **summary})

    def _tick_loop(self) -> None:
        while True:
            gevent.sleep(1.0 - (time.time() % 1.0))
            for transport, count in list(metrics.open_connections.items()):
                bucket = self._bucket(transport)
                bucket.open_connections = max(bucket.open_connections, count)
            self.flush(before=int(time.time()) - 1)

    def flush(self, before: int | None = None) -> None:
        """Write every second older than `before` (all seconds when None) and forget it."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        for key in sorted(self.seconds):
            second, transport = key
            if before is not None and second >= before:
                continue
            self._file.write(json.dumps(self.seconds.pop(key).to_json(second, transport)) + "\n")
        self._file.flush()

    def stop(self) -> None:
        """Stop sampling and write everything left."""
        if self._sampler is not None:
            self._sampler.kill(block=False)
            self._sampler = None
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
        # One file per recording process (the timeline's name with "timeline" replaced), merged when read.
        subscribers_path = self.path.parent / self.path.name.replace("timeline", "subscribers")
        with subscribers_path.open("a", encoding="utf-8") as handle:
            for subscriber in self.subscribers:
                handle.write(json.dumps(subscriber) + "\n")
        self.subscribers = []
        self.environment.events.request.remove_listener(self.on_request)
        metrics.stream_counters.remove_listener(self.on_counter)
        metrics.subscriber_closed.remove_listener(self.on_subscriber)
