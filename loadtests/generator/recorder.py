"""Per-second timeline of what the clients measured, per transport, with exact latency histograms.

Locust rounds response times into buckets; here each second keeps HdrHistograms (microseconds,
3 significant digits) so that any window of seconds can later be merged into exact percentiles.
The timeline is written as JSON lines, one per (second, transport), for the collect stage to join
with the step windows and the target's resource samples:

    {"t": 1700000000, "transport": "sse", "delivered": 20, "requests": 0, "connects": 0, "errors": 0,
     "open_connections": 10, <stream counters: bytes_received, lost, ...>,
     "delivery_hist": <encoded or null>, "connect_hist": <encoded or null>, "request_hist": <encoded or null>}
    {"t": 1700000000, "transport": "generator", "lag_hist": <encoded>, "lag_samples": 4}

`request_hist` holds the response times of ordinary (successful) requests such as `GET /poll`; the
"generator" pseudo-transport holds the load generator's own schedule lag (`metrics.generator_lag`).
subscribers.jsonl gets one line per stopped subscriber (its own seq accounting).

A recorder has one of three roles, after the Locust runner it serves (loadtests/generator/hooks.py picks it):

- "local" (one process): listens to the request events, stream counters, subscriber summaries and
  generator lag of its process; each finished second is written to timeline.jsonl as soon as it is over.
- "worker" (a distributed run's worker): listens like "local" but writes nothing; finished seconds and
  stopped subscribers wait in an outbox that hooks.py ships to the master in Locust's own stats report
  (`report_to_master`, every WORKER_REPORT_INTERVAL s) and, at test stop, in a final custom message.
- "master": listens to nothing local (it runs no users); it merges the workers' rows exactly as they
  arrive (counts add, histograms add: `collect.merge_seconds`) into its live view (`rows()`), and
  writes a second to timeline.jsonl once it is older than `hold_seconds` (5 report intervals), so that
  every worker's report of it has normally arrived. At stop, after hooks.py has the final rows of every
  worker, everything left is written, and subscribers.jsonl with it. A row arriving for a second already
  written (a worker late by more than `hold_seconds`, or after stop) is still merged into the live view,
  and appended to the file as one more line for that (second, transport) holding only the late part:
  readers that merge lines with the same key (collect.merge_seconds does) get the exact total.
"""

from __future__ import annotations

import errno
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

import gevent
from hdrh.histogram import HdrHistogram
from locust.runners import WORKER_REPORT_INTERVAL

from rtcap.loadtests.transports import metrics
from rtcap.loadtests.run.collect import merge_seconds
from rtcap.loadtests.generator.timeline import HIGHEST_US, LOWEST_US, encode_histogram, new_histogram

GENERATOR = "generator"
"""The pseudo-transport of the load generator's own schedule lag rows."""

LOCAL, WORKER, MASTER = "local", "worker", "master"
ROLES = (LOCAL, WORKER, MASTER)

MASTER_HOLD_SECONDS = 5 * WORKER_REPORT_INTERVAL
"""How long the master keeps a second before writing it: workers ship finished seconds every report."""


GENERATOR_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.EADDRNOTAVAIL, errno.ENOBUFS, errno.EADDRINUSE})
"""Errors of the load generator's own limits (file descriptors, ephemeral ports, buffers), not the target's."""
GENERATOR_ERROR_WORDS = ("too many open files", "cannot assign requested address", "no buffer space")
EXCEPTION_PREFIX = "exception:"
"""Timeline counter name prefix of an exception raised inside a user: "exception:MemoryError" -> count."""


def is_generator_limit(exception: Any) -> bool:
    """True when a failed request or connection hit a limit of the load generator's machine."""
    seen = 0
    while exception is not None and seen < 5:  # the OSError may be wrapped (e.g. as a request's cause)
        if getattr(exception, "errno", None) in GENERATOR_ERRNOS:
            return True
        if any(words in str(exception).lower() for words in GENERATOR_ERROR_WORDS):
            return True
        exception = exception.__cause__ or exception.__context__
        seen += 1
    return False


def _micros(milliseconds: float | None) -> int:
    return max(LOWEST_US, min(HIGHEST_US, int(round((milliseconds or 0.0) * 1000))))


@dataclass
class Second:
    """What one transport's clients measured during one second."""

    delivery: HdrHistogram = field(default_factory=new_histogram)
    connect: HdrHistogram = field(default_factory=new_histogram)
    request: HdrHistogram = field(default_factory=new_histogram)
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
            "request_hist": encode_histogram(self.request) if self.request.get_total_count() else None,
        }


@dataclass
class LagSecond:
    """The load generator's schedule lag during one second."""

    lag: HdrHistogram = field(default_factory=new_histogram)

    def to_json(self, second: int) -> dict[str, Any]:
        """The JSON line for this second (transport "generator")."""
        return {"t": second, "transport": GENERATOR, "lag_hist": encode_histogram(self.lag),
                "lag_samples": self.lag.get_total_count()}


class TimelineRecorder:
    """Per-second rows of one process ("local", "worker") or merged from the workers ("master")."""

    def __init__(self, environment: Any, path: Path | None, role: str = LOCAL, hold_seconds: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        if role != WORKER and path is None:
            raise ValueError("a local or master recorder writes a timeline file: give its path")
        self.environment = environment
        self.path = path
        self.role = role
        self.hold_seconds = (MASTER_HOLD_SECONDS if role == MASTER else 0.0) if hold_seconds is None else hold_seconds
        self.clock = clock
        self.seconds: dict[tuple[int, str], Second] = {}
        self.lag_seconds: dict[int, LagSecond] = {}
        self.subscribers: list[dict[str, Any]] = []
        self.stopped = False
        self._view: dict[tuple[int, str], dict[str, Any]] = {}
        self._unwritten: set[tuple[int, str]] = set()
        self._written: set[tuple[int, str]] = set()
        self._outbox: list[dict[str, Any]] = []
        self._outbox_subscribers: list[dict[str, Any]] = []
        self._file: TextIO | None = None
        self._sampler: gevent.Greenlet | None = None
        if role != MASTER:
            environment.events.request.add_listener(self.on_request)
            environment.events.user_error.add_listener(self.on_user_error)
            metrics.stream_counters.add_listener(self.on_counter)
            metrics.deliveries.add_listener(self.on_deliveries)
            metrics.subscriber_closed.add_listener(self.on_subscriber)
            metrics.generator_lag.add_listener(self.on_lag)

    # -- recording (local and worker) ------------------------------------------------------------------

    def start(self) -> None:
        """Start the once-a-second greenlet that samples open connections and finishes old seconds."""
        if self._sampler is None and not self.stopped:
            self._sampler = gevent.spawn(self._tick_loop)

    def _bucket(self, transport: str) -> Second:
        key = (int(self.clock()), transport)
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
        micros = _micros(response_time)
        if exception is not None and is_generator_limit(exception):
            # The generator ran out of its own fds or ports: charged to it, never to the target.
            bucket.counters["generator_errors"] = bucket.counters.get("generator_errors", 0) + 1
            return
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
            if exception is None:
                bucket.request.record_value(micros)

    def on_deliveries(self, transport: str, second: int, counts: dict[int, int], **_kwargs: Any) -> None:
        """Account for one second's batch of delivered events (metrics.Deliveries): each distinct latency once."""
        key = (second, transport)
        bucket = self.seconds.get(key)
        if bucket is None:
            bucket = self.seconds[key] = Second()
        record = bucket.delivery.record_value
        for micros, n in counts.items():
            record(micros, n)
        bucket.delivered += sum(counts.values())

    def on_user_error(self, user_instance: Any, exception: BaseException, **_kwargs: Any) -> None:
        """Count an exception raised inside a user's task (Locust logs it and goes on): never silent, it
        invalidates its step as a generator-side error, by name."""
        user = getattr(user_instance, "user", user_instance)  # a TaskSet's user, or the user itself
        transport = getattr(user, "transport", None) or type(user).__name__
        name = "generator_errors" if is_generator_limit(exception) else EXCEPTION_PREFIX + type(exception).__name__
        self.on_counter(transport, name, 1)

    def on_counter(self, transport: str, name: str, value: int, second: int | None = None, **_kwargs: Any) -> None:
        """Account for a stream counter increment (in `second`, else now)."""
        if second is None:
            bucket = self._bucket(transport)
        else:
            bucket = self.seconds.get((second, transport)) or self.seconds.setdefault((second, transport), Second())
        counters = bucket.counters
        counters[name] = counters.get(name, 0) + value

    def on_subscriber(self, transport: str, summary: dict[str, Any], **_kwargs: Any) -> None:
        """Keep one stopped subscriber's accounting for subscribers.jsonl."""
        line = {"transport": transport, **summary}
        if self.role == WORKER:
            self._outbox_subscribers.append(line)
        else:
            self.subscribers.append(line)

    def on_lag(self, lag_ms: float, **_kwargs: Any) -> None:
        """Account for one measurement of the generator's own schedule lag."""
        second = int(self.clock())
        bucket = self.lag_seconds.get(second)
        if bucket is None:
            bucket = self.lag_seconds[second] = LagSecond()
        bucket.lag.record_value(_micros(lag_ms))

    def _tick_loop(self) -> None:
        while True:
            gevent.sleep(1.0 - (self.clock() % 1.0))
            if self.role != MASTER:
                metrics.flush_deliveries(self.clock())  # the batches of the second just over, before it is finished
                for transport, count in list(metrics.open_connections.items()):
                    bucket = self._bucket(transport)
                    bucket.open_connections = max(bucket.open_connections, count)
            self.flush(before=int(self.clock()) - 1)

    def _finish(self, before: int | None) -> list[dict[str, Any]]:
        """Pop the recorded seconds older than `before` (all when None) as JSON rows."""
        rows = []
        for key in sorted(self.seconds):
            if before is None or key[0] < before:
                rows.append(self.seconds.pop(key).to_json(*key))
        for second in sorted(self.lag_seconds):
            if before is None or second < before:
                rows.append(self.lag_seconds.pop(second).to_json(second))
        return rows

    # -- shipping (worker) -----------------------------------------------------------------------------

    def take_outbox(self) -> dict[str, list[dict[str, Any]]]:
        """A worker's finished rows and stopped subscribers not shipped yet; the outbox is emptied."""
        rows, subscribers = self._outbox, self._outbox_subscribers
        self._outbox, self._outbox_subscribers = [], []
        return {"rows": rows, "subscribers": subscribers}

    # -- merging and writing (local and master) --------------------------------------------------------

    def receive(self, rows: Iterable[dict[str, Any]], subscribers: Iterable[dict[str, Any]] = ()) -> None:
        """Merge rows (timeline lines) and subscriber lines from a recording process into this one."""
        late = []
        for row in merge_seconds(list(rows)):
            key = (row["t"], row["transport"])
            old = self._view.get(key)
            self._view[key] = row if old is None else merge_seconds([old, row])[0]
            if key in self._written:
                late.append(row)  # only the late part: the earlier line already holds the rest
            else:
                self._unwritten.add(key)
        subscribers = list(subscribers)
        if self.stopped:
            self._append(self.path, late + [self._view[key] for key in sorted(self._unwritten)])
            self._written |= self._unwritten
            self._unwritten = set()
            self._append(self._subscribers_path(), subscribers)
        else:
            if late:
                self._write(late)
            self.subscribers.extend(subscribers)

    def rows(self, since: int | None = None) -> list[dict[str, Any]]:
        """The live view: every finished second merged so far (from `since` on), as timeline lines.

        On the master these are the workers' rows merged; a second keeps growing while reports of it arrive.
        """
        return [dict(self._view[key]) for key in sorted(self._view) if since is None or key[0] >= since]

    def flush(self, before: int | None = None) -> None:
        """Finish every second older than `before` (all when None): ship it (worker) or merge it and write
        what is old enough (local, master)."""
        rows = self._finish(before)
        if self.role == WORKER:
            self._outbox.extend(rows)
            return
        if rows:
            self.receive(rows)
        limit = None if before is None else before - self.hold_seconds
        due = sorted(key for key in self._unwritten if limit is None or key[0] < limit)
        if due or self._file is None:
            self._write([self._view[key] for key in due])
            self._unwritten.difference_update(due)
            self._written.update(due)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        assert self.path is not None
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        for row in rows:
            self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    @staticmethod
    def _append(path: Path | None, lines: list[dict[str, Any]]) -> None:
        if path is None or not lines:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            for line in lines:
                handle.write(json.dumps(line) + "\n")

    def _subscribers_path(self) -> Path | None:
        # The timeline's name with "timeline" replaced: subscribers.jsonl next to timeline.jsonl.
        return None if self.path is None else self.path.parent / self.path.name.replace("timeline", "subscribers")

    def stop(self) -> dict[str, list[dict[str, Any]]]:
        """Stop recording and finish everything left: a worker returns its last outbox (to ship), the others
        write their files. A master still merges (and appends) rows that arrive after this."""
        if self._sampler is not None:
            self._sampler.kill(block=False)
            self._sampler = None
        if self.stopped:
            return {"rows": [], "subscribers": []}
        if self.role != MASTER:
            metrics.flush_deliveries()
            self.environment.events.request.remove_listener(self.on_request)
            self.environment.events.user_error.remove_listener(self.on_user_error)
            metrics.stream_counters.remove_listener(self.on_counter)
            metrics.deliveries.remove_listener(self.on_deliveries)
            metrics.subscriber_closed.remove_listener(self.on_subscriber)
            metrics.generator_lag.remove_listener(self.on_lag)
        self.flush()
        self.stopped = True
        if self.role == WORKER:
            return self.take_outbox()
        if self._file is not None:
            self._file.close()
            self._file = None
        self._append(self._subscribers_path(), self.subscribers)
        self.subscribers = []
        return {"rows": [], "subscribers": []}
