"""How clients report: every measurement goes out as a Locust request event, plus a few stream counters.

Request events carry `context={"transport": ...}` so that listeners (the step recorder, Locust's stats,
CSVs, web UI and distributed aggregation) can group by transport. Names used:
  "delivery"  events received; response_time = delivery latency (receive time - publish ts), ms. Not one
              request event each: see `Deliveries`
  "received"  one event received from a target whose messages carry no publish time (latency unknown)
  "connect"   one connection attempt; response_time = time to response head / handshake, ms
  "sequence"  a failure per gap, late arrival, duplicate or numbering reset seen in the sequence numbers
              (visible in Locust's failures)
  anything else: an ordinary request (e.g. "/poll")
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import gevent
from locust import stats as locust_stats
from locust.event import EventHook

from rtcap.loadtests.generator.timeline import HIGHEST_US, LOWEST_US
from rtcap.loadtests.transports.seqtrack import SeqTracker, Verdict

DELIVERY = "delivery"
RECEIVED = "received"
CONNECT = "connect"
SEQUENCE = "sequence"

stream_counters = EventHook()
"""Fired with (transport=str, name=str, value=int, second=int) for byte counts and sequence anomalies: the sum
of one second's `count` calls, once that second is over (`flush_counts`)."""

subscriber_closed = EventHook()
"""Fired with (transport=str, summary=dict) when a subscriber stops: its own seq range and anomaly counts."""

deliveries = EventHook()
"""Fired with (transport=str, second=int, counts={latency_us: events}, wire_bytes=int): delivered events of one
second of receive time, in one or a few parts (see `Deliveries`)."""

generator_lag = EventHook()
"""Fired with (lag_ms=float) by the load generator's own schedule monitor: how late a timer woke up."""

STREAM_COUNTERS = ("bytes_sent", "bytes_received", "payload_bytes", "lost", "duplicated", "reordered", "seq_resets",
                   "missed_ticks", "round_trips", "notifications", "unanswered", "in_flight", "messages_sent",
                   "messages_received", "sent_room_members", "not_modified", "bytes_saved", "cache_hits",
                   "cache_misses", "cache_age_s")
"""Counter names clients use: wire bytes each way, application bytes received (HTTP bodies, SSE data,
WebSocket messages), sequence anomalies (`seq_resets`: the target's numbering started again, e.g. it
restarted; see loadtests/transports/seqtrack.py), and polls (or paced requests) that could not be sent on their tick;
request/response exchanges waited on (signal fetches, answered RPC and REST requests), "changed" notifications
received, RPC requests never answered (errors) or still in flight when the user stopped, messages a client
sent and received (presence), and the room size of each message sent (presence: their ratio is the room size);
polled answers that were 304 Not Modified, the bytes those saved, and answers a cache served (hits) or passed to
the handler (misses) with the sum of their Age seconds (loadtests/transports/answers.py defines them)."""

open_connections: Counter[str] = Counter()
"""Client connections open right now in this process, per transport."""


class SequenceError(Exception):
    """A gap, late arrival, duplicate or numbering reset in a subscriber's sequence numbers."""


SEQUENCE_ERRORS = {
    Verdict.GAP: SequenceError("gap: events missing before a received seq"),
    Verdict.LATE: SequenceError("late: a seq arrived after a later one"),
    Verdict.DUPLICATE: SequenceError("duplicate: a seq received again"),
    Verdict.RESET: SequenceError("reset: the numbering started again (seq went down)"),
}
"""One message per kind, never the seq or the count: Locust keeps a failure row per distinct message, and a
lossy target would otherwise add one per gap for the whole run. How many were lost, duplicated or reordered,
and when, is in the per-second counters, the timeline and subscribers.jsonl."""


def _fire(environment: Any, transport: str, name: str, response_time: float, length: int,
          exception: BaseException | None) -> None:
    environment.events.request.fire(
        request_type=transport, name=name, response_time=response_time, response_length=length,
        exception=exception, context={"transport": transport},
    )


class Deliveries:
    """The delivered events of one transport in one second of one process: a count per latency in microseconds.

    A Locust request event per delivered message cost more CPU than receiving and parsing it (listeners called
    one by one, Locust's stats and the recorder's histogram updated per event). Here an event is one dict
    increment; every FLUSH_S, when its second is over and when a user stops (`flush_deliveries`) the batch goes
    to Locust's statistics (`log_to_stats`: the same counts, sums and buckets as one event each) and to the
    recorder (`deliveries`), which records each distinct latency once, with its count.
    """

    __slots__ = ("counts", "environment", "second", "transport", "wire_bytes")

    def __init__(self, environment: Any, transport: str, second: int) -> None:
        self.environment = environment
        self.transport = transport
        self.second = second
        self.counts: dict[int, int] = {}
        self.wire_bytes = 0

    def flush(self) -> None:
        """Hand the batch to Locust's statistics and to the `deliveries` listeners."""
        if not self.counts:
            return
        runner = getattr(self.environment, "runner", None)
        if runner is not None:  # Locust's stats listen to request events only once a runner exists
            log_to_stats(runner.stats, self.transport, DELIVERY, self.counts, self.wire_bytes)
        deliveries.fire(transport=self.transport, second=self.second, counts=self.counts, wire_bytes=self.wire_bytes)


_batches: dict[tuple[int, str], Deliveries] = {}
_flusher: gevent.Greenlet | None = None


def report_delivery(environment: Any, transport: str, publish_ts: float, received_at: float, wire_bytes: int) -> None:
    """Count one received event with its delivery latency (receive time - publish ts) in its second's batch."""
    second = int(received_at)
    key = (id(environment), transport)
    batch = _batches.get(key)
    if batch is None or batch.second != second:
        if batch is not None:
            batch.flush()
        batch = _batches[key] = Deliveries(environment, transport, second)
        _start_flusher()
    micros = int((received_at - publish_ts) * 1_000_000.0 + 0.5)
    micros = LOWEST_US if micros < LOWEST_US else HIGHEST_US if micros > HIGHEST_US else micros
    counts = batch.counts
    counts[micros] = counts.get(micros, 0) + 1
    batch.wire_bytes += wire_bytes


def flush_deliveries(before: float | None = None) -> None:
    """Hand on every batch (deliveries and counts) of a second before `before` (unix seconds; all when None)."""
    for key, batch in list(_batches.items()):
        if before is None or batch.second < int(before):
            del _batches[key]
            batch.flush()
    if before is None or _counts_second < int(before):
        flush_counts()


def _start_flusher() -> None:
    """One greenlet per process hands on the batches every FLUSH_S, even with no new event."""
    global _flusher
    if _flusher is None or _flusher.dead:
        _flusher = gevent.spawn(_flush_loop)


FLUSH_S = 0.25
"""How often pending batches go out, the current second's included (a second may go out in parts): Locust's
statistics, its web UI and CSV lag the clients by at most this much."""


def _flush_loop() -> None:
    while _batches or _counts:
        gevent.sleep(FLUSH_S)
        flush_deliveries()


def log_to_stats(stats: Any, method: str, name: str, counts: dict[int, int], length: int) -> None:
    """Add events to Locust's statistics as `RequestStats.log_request` would one by one: `counts` maps a
    response time in microseconds to its number of events, `length` is their total response length."""
    total = sum(counts.values())
    now = time.time()
    summed = 0.0
    buckets: Counter[int] = Counter()
    for micros, n in counts.items():
        ms = micros / 1000.0
        summed += ms * n
        buckets[locust_stats.bucket_response_time(ms)] += n
    low, high = min(counts) / 1000.0, max(counts) / 1000.0
    for entry in (stats.total, stats.get(name, method)):
        second = int(now)
        if entry.use_response_times_cache and entry.last_request_timestamp and second > int(entry.last_request_timestamp):
            entry._cache_response_times(second - 1)
        entry.num_requests += total
        entry.num_reqs_per_sec[second] += total
        entry.last_request_timestamp = now
        entry.total_response_time += summed
        entry.min_response_time = low if entry.min_response_time is None else min(entry.min_response_time, low)
        entry.max_response_time = max(entry.max_response_time, high)
        for bucket, n in buckets.items():
            entry.response_times[bucket] += n
        entry.total_content_length += length


def report_event(environment: Any, transport: str, tracker: SeqTracker, seq: int | str, publish_ts: float | None,
                 received_at: float, wire_bytes: int) -> None:
    """Report one received event: its latency when its publish time is known, then its place in the sequence."""
    if publish_ts is None:
        _fire(environment, transport, RECEIVED, 0.0, wire_bytes, None)
    else:
        report_delivery(environment, transport, publish_ts, received_at, wire_bytes)
    track_sequence(environment, transport, tracker, seq, publish_ts)


def report_connect(environment: Any, transport: str, connect_ms: float, exception: BaseException | None = None) -> None:
    """Report one connection attempt: its time, and the exception if it failed."""
    _fire(environment, transport, CONNECT, connect_ms, 0, exception)


def report_error(environment: Any, transport: str, name: str, exception: BaseException, elapsed_ms: float = 0.0) -> None:
    """Report a failure that is not a connection attempt (a stream that broke, a malformed message)."""
    _fire(environment, transport, name, elapsed_ms, 0, exception)


_counts: dict[tuple[str, str], int] = {}
_counts_second = 0


def count(transport: str, name: str, value: int) -> None:
    """Add to a stream counter (one of STREAM_COUNTERS); the second's sums go out when it is over: clients count
    bytes for every message, and one listener call each time was a good share of the generator's CPU."""
    global _counts_second
    if not value:
        return
    second = int(time.time())
    if second != _counts_second:
        flush_counts()
        _counts_second = second
        _start_flusher()
    key = (transport, name)
    _counts[key] = _counts.get(key, 0) + value


def flush_counts() -> None:
    """Fire `stream_counters` with the sums counted so far (and the second they were counted in)."""
    if not _counts:
        return
    pending = list(_counts.items())
    _counts.clear()
    for (transport, name), value in pending:
        stream_counters.fire(transport=transport, name=name, value=value, second=_counts_second)


def track_sequence(environment: Any, transport: str, tracker: SeqTracker, seq: int | str,
                   publish_ts: float | None = None) -> Verdict:
    """Feed a received seq (and its publish time, which tells a restarted numbering from a repeat) to the
    subscriber's tracker; count and report anything out of order."""
    before = (tracker.lost, tracker.duplicated, tracker.reordered)
    verdict = tracker.feed(seq, publish_ts)
    if verdict is Verdict.IN_ORDER:
        return verdict  # the common case: nothing counted
    for name, old, new in zip(("lost", "duplicated", "reordered"), before,
                              (tracker.lost, tracker.duplicated, tracker.reordered)):
        count(transport, name, new - old)
    if verdict is Verdict.RESET:
        # Counted per second like the other anomalies, so the timeline shows when the target restarted.
        count(transport, "seq_resets", 1)
    report_error(environment, transport, SEQUENCE, SEQUENCE_ERRORS[verdict])
    return verdict


def report_subscriber(transport: str, tracker: SeqTracker) -> None:
    """Publish one subscriber's final accounting (first/highest seq, received, lost, duplicated, reordered, gaps,
    resets)."""
    if tracker.received:
        subscriber_closed.fire(transport=transport, summary=tracker.summary())


def report_generator_lag(lag_ms: float) -> None:
    """Report how late the generator's event loop ran a timer (its own saturation, not the target's)."""
    generator_lag.fire(lag_ms=lag_ms)


class ByteMeter:
    """Reports the bytes a client moved since its last report, so each second of the timeline gets its share."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.reported = (0, 0)

    def flush(self, counts: tuple[int, int]) -> None:
        """Report (bytes sent, bytes received) so far, as the increase since the last flush."""
        count(self.transport, "bytes_sent", counts[0] - self.reported[0])
        count(self.transport, "bytes_received", counts[1] - self.reported[1])
        self.reported = counts
