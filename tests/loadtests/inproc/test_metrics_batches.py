"""Delivered events and stream counters go out once per second, in batches that add up to exactly what one
event per message gave: Locust's statistics, the recorder's histograms and counters."""

from __future__ import annotations

import random
import time

import pytest
from locust.env import Environment
from locust.stats import RequestStats

from rtcap.loadtests.generator.recorder import TimelineRecorder
from rtcap.loadtests.generator.timeline import decode_histogram, read_timeline
from rtcap.loadtests.transports import metrics
from rtcap.loadtests.transports.seqtrack import SeqTracker


def test_a_batch_in_locusts_statistics_equals_logging_each_event() -> None:
    rng = random.Random(7)
    latencies_us = [rng.choice([1, 999, 1500, 12_345, 250_000, 3_600_000_000]) + rng.randrange(50) for _ in range(5000)]
    one_by_one, batched = RequestStats(), RequestStats()
    for micros in latencies_us:
        one_by_one.log_request("ws", metrics.DELIVERY, micros / 1000.0, 100)
    counts: dict[int, int] = {}
    for micros in latencies_us:
        counts[micros] = counts.get(micros, 0) + 1
    metrics.log_to_stats(batched, "ws", metrics.DELIVERY, counts, 100 * len(latencies_us))
    for a, b in ((one_by_one.total, batched.total), (one_by_one.get(metrics.DELIVERY, "ws"), batched.get(metrics.DELIVERY, "ws"))):
        assert a.num_requests == b.num_requests == 5000
        assert a.response_times == b.response_times
        assert (a.min_response_time, a.max_response_time) == (b.min_response_time, b.max_response_time)
        assert a.total_response_time == pytest.approx(b.total_response_time, rel=1e-12)
        assert a.total_content_length == b.total_content_length
        assert sum(a.num_reqs_per_sec.values()) == sum(b.num_reqs_per_sec.values())
        assert a.get_response_time_percentile(0.99) == b.get_response_time_percentile(0.99)


def test_deliveries_and_counters_reach_the_recorder_in_the_second_they_were_received(tmp_path) -> None:
    environment = Environment()
    recorder = TimelineRecorder(environment, tmp_path / "timeline.jsonl")
    tracker = SeqTracker()
    now = int(time.time())
    received = [now - 3 + 0.25, now - 3 + 0.5, now - 2 + 0.1]  # two seconds, both over
    try:
        for seq, at in enumerate(received, start=1):
            metrics.report_event(environment, "ws", tracker, seq, at - 0.012, at, 40)
        metrics.count("ws", "bytes_received", 40)
        metrics.flush_deliveries()
    finally:
        recorder.stop()
    rows = {row["t"]: row for row in read_timeline(tmp_path / "timeline.jsonl") if row["transport"] == "ws"}
    assert rows[now - 3]["delivered"] == 2 and rows[now - 2]["delivered"] == 1
    histogram = decode_histogram(rows[now - 3]["delivery_hist"])
    assert histogram.get_total_count() == 2
    assert histogram.get_value_at_percentile(50) == pytest.approx(12_000, rel=0.002)
    assert sum(row.get("bytes_received", 0) for row in rows.values()) == 40
    assert tracker.highest == 3 and tracker.lost == 0


def test_counters_of_one_second_go_out_summed_with_that_second() -> None:
    fired: list[tuple[str, str, int, int]] = []

    def on_counter(transport: str, name: str, value: int, second: int, **_kwargs: object) -> None:
        fired.append((transport, name, value, second))

    metrics.flush_counts()
    metrics.stream_counters.add_listener(on_counter)
    try:
        before = int(time.time())
        for _ in range(100):
            metrics.count("sse", "bytes_received", 7)
        metrics.count("sse", "bytes_received", 0)  # nothing to count
        metrics.flush_counts()
    finally:
        metrics.stream_counters.remove_listener(on_counter)
    assert sum(value for _t, _n, value, _s in fired) == 700
    assert all(second >= before for _t, _n, _v, second in fired) and len(fired) <= 2  # one line per second
