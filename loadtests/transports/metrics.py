"""How clients report: every measurement goes out as a Locust request event, plus a few stream counters.

Request events carry `context={"transport": ...}` so that listeners (the step recorder, Locust's stats,
CSVs, web UI and distributed aggregation) can group by transport. Names used:
  "delivery"  one event received; response_time = delivery latency (receive time - publish ts), ms
  "received"  one event received from a target whose messages carry no publish time (latency unknown)
  "connect"   one connection attempt; response_time = time to response head / handshake, ms
  "sequence"  a failure per gap, late arrival, duplicate or numbering reset seen in the sequence numbers
              (visible in Locust's failures)
  anything else: an ordinary request (e.g. "/poll")
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from locust.event import EventHook

from rtcap.loadtests.transports.seqtrack import SeqTracker, Verdict

DELIVERY = "delivery"
RECEIVED = "received"
CONNECT = "connect"
SEQUENCE = "sequence"

stream_counters = EventHook()
"""Fired with (transport=str, name=str, value=int) for byte counts and sequence anomalies."""

subscriber_closed = EventHook()
"""Fired with (transport=str, summary=dict) when a subscriber stops: its own seq range and anomaly counts."""

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


def _fire(environment: Any, transport: str, name: str, response_time: float, length: int,
          exception: BaseException | None) -> None:
    environment.events.request.fire(
        request_type=transport, name=name, response_time=response_time, response_length=length,
        exception=exception, context={"transport": transport},
    )


def report_delivery(environment: Any, transport: str, publish_ts: float, received_at: float, wire_bytes: int,
                    name: str = DELIVERY) -> None:
    """Report one received event with its delivery latency (receive time - publish ts)."""
    _fire(environment, transport, name, max(0.0, (received_at - publish_ts) * 1000.0), wire_bytes, None)


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


def count(transport: str, name: str, value: int) -> None:
    """Add to a stream counter (one of STREAM_COUNTERS)."""
    if value:
        stream_counters.fire(transport=transport, name=name, value=value)


def track_sequence(environment: Any, transport: str, tracker: SeqTracker, seq: int | str,
                   publish_ts: float | None = None) -> Verdict:
    """Feed a received seq (and its publish time, which tells a restarted numbering from a repeat) to the
    subscriber's tracker; count and report anything out of order."""
    before = (tracker.lost, tracker.duplicated, tracker.reordered)
    highest = tracker.highest
    verdict = tracker.feed(seq, publish_ts)
    for name, old, new in zip(("lost", "duplicated", "reordered"), before,
                              (tracker.lost, tracker.duplicated, tracker.reordered)):
        count(transport, name, new - old)
    if verdict is Verdict.GAP:
        report_error(environment, transport, SEQUENCE,
                     SequenceError(f"gap: {tracker.lost - before[0]} event(s) missing before seq {seq}"))
    elif verdict is Verdict.LATE:
        report_error(environment, transport, SEQUENCE, SequenceError(f"late: seq {seq} arrived after a later one"))
    elif verdict is Verdict.DUPLICATE:
        report_error(environment, transport, SEQUENCE, SequenceError(f"duplicate: seq {seq} received again"))
    elif verdict is Verdict.RESET:
        # Counted per second like the other anomalies, so the timeline shows when the target restarted.
        count(transport, "seq_resets", 1)
        report_error(environment, transport, SEQUENCE,
                     SequenceError(f"reset: seq went from {highest} to {seq} (the numbering started again)"))
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
