"""Joining windows, timeline seconds and samples into step rows."""

import json
from pathlib import Path

import pytest

from rtcap.loadtests.run.collect import collect_transport, label_samples, step_row
from rtcap.loadtests.generator.timeline import encode_histogram, new_histogram


def second(t: int, transport: str, latencies_ms: list[float], **extra: int) -> dict:
    histogram = new_histogram()
    for value in latencies_ms:
        histogram.record_value(int(value * 1000))
    return {"t": t, "transport": transport, "delivered": len(latencies_ms), "requests": 0, "connects": 0, "errors": 0,
            "open_connections": 10, "delivery_hist": encode_histogram(histogram) if latencies_ms else None,
            "connect_hist": None, **extra}


def sample(t: float, role: str, rss: int, cpu: float, tcp: int | None = None) -> dict:
    return {"t": t, "role": role, "pid": 1, "rss_bytes": rss, "uss_bytes": rss // 2, "cpu_percent": cpu,
            "tcp_established": tcp, "sockstat_tcp_mem_bytes": 4096, "transport": "sse"}


WINDOW = {"step": 2, "users": 10, "running_users": 10, "t_start": 100.0, "t_end": 104.0, "ramp_s": 1.0, "reached": True}


def test_percentiles_come_from_merged_seconds_inside_the_window_only() -> None:
    seconds = [
        second(99, "sse", [5000.0]),                      # before the window: ignored
        second(100, "sse", [10.0] * 50),
        second(101, "sse", [20.0] * 49 + [900.0]),
        second(102, "sse", [10.0] * 50, bytes_received=5000, bytes_sent=100, lost=2),
        second(103, "sse", [10.0] * 50),
        second(104, "sse", [7000.0]),                     # ends after the window: ignored
        second(101, "ws", [1.0] * 10),                    # another transport: ignored
    ]
    row = step_row("sse", WINDOW, seconds, [])
    assert row["delivered"] == 200
    assert row["duration_s"] == 4
    assert row["msgs_per_s"] == 50
    assert row["latency_p50_ms"] == pytest.approx(10.0, rel=0.01)
    assert row["latency_p99_ms"] == pytest.approx(20.0, rel=0.01)
    assert row["latency_max_ms"] == pytest.approx(900.0, rel=0.01)
    assert row["bytes_per_event"] == pytest.approx(5100 / 200)
    assert row["lost"] == 2


def test_target_samples_give_memory_connections_and_generator_saturation() -> None:
    samples = [sample(101, "target", 100, 10.0, tcp=10), sample(102, "target", 300, 30.0, tcp=10),
               sample(103, "target", 200, 20.0, tcp=9), sample(110, "target", 9999, 99.0, tcp=1),
               sample(101.5, "generator", 0, 95.0), sample(102.5, "generator", 0, 93.0)]
    row = step_row("sse", WINDOW, [second(101, "sse", [1.0])], samples)
    assert row["rss_bytes"] == 200
    assert row["cpu_percent"] == pytest.approx(20.0)
    assert row["connections"] == 10
    assert row["generator_cpu_percent"] == pytest.approx(94.0)
    assert "generator_saturated" in row["flags"] and row["valid"] is False


def test_without_target_samples_connections_come_from_the_clients() -> None:
    row = step_row("sse", {**WINDOW, "reached": False}, [second(101, "sse", [1.0])], [])
    assert row["connections"] == 10
    assert row["rss_bytes"] is None
    assert set(row["flags"].split(";")) == {"users_not_reached", "no_target_samples"}
    assert row["valid"] is False


def test_collect_reads_files_and_survives_a_torn_last_line(tmp_path: Path) -> None:
    (tmp_path / "windows.jsonl").write_text(json.dumps(WINDOW) + "\n" + '{"step": 3, "us')
    (tmp_path / "timeline.jsonl").write_text(json.dumps(second(101, "sse", [3.0, 4.0])) + "\n{torn")
    rows = collect_transport("sse", tmp_path, [])
    assert [r["step"] for r in rows] == [2]
    assert rows[0]["delivered"] == 2


def test_samples_are_labelled_with_their_step() -> None:
    rows = [{"transport": "sse", "step": 2, "t_start": 100.0, "t_end": 104.0}]
    labelled = label_samples([sample(101, "target", 1, 0.0), sample(105, "target", 1, 0.0)], rows)
    assert [(s["step"], s["phase"]) for s in labelled] == [(2, "measure"), (-1, "ramp")]


def test_timelines_of_several_workers_merge_exactly(tmp_path: Path) -> None:
    # Two workers, each with half the subscribers: counts add up, percentiles come from the merged histogram.
    (tmp_path / "windows.jsonl").write_text(json.dumps(WINDOW) + "\n")
    (tmp_path / "timeline-101.jsonl").write_text(
        json.dumps(second(101, "sse", [10.0] * 90, bytes_received=900)) + "\n")
    (tmp_path / "timeline-102.jsonl").write_text(
        json.dumps(second(101, "sse", [500.0] * 10, bytes_received=100)) + "\n")
    (row,) = collect_transport("sse", tmp_path, [])
    assert row["delivered"] == 100
    assert row["bytes_received"] == 1000
    assert row["connections"] == 20  # 10 open on each worker
    assert row["latency_p50_ms"] == pytest.approx(10.0, rel=0.01)
    assert row["latency_p95_ms"] == pytest.approx(500.0, rel=0.01)  # only visible once the workers are merged


def test_the_busiest_generator_process_decides_saturation() -> None:
    samples = [dict(sample(101, "generator", 0, 95.0), pid=7), dict(sample(102, "generator", 0, 20.0), pid=8)]
    row = step_row("sse", WINDOW, [second(101, "sse", [1.0])], samples)
    assert row["generator_cpu_percent"] == pytest.approx(95.0)
    assert not row["valid"]


def lag_second(t: int, lags_ms: list[float]) -> dict:
    histogram = new_histogram()
    for value in lags_ms:
        histogram.record_value(max(1, int(value * 1000)))
    return {"t": t, "transport": "generator", "lag_hist": encode_histogram(histogram), "lag_samples": len(lags_ms)}


def test_generator_lag_above_the_limit_invalidates_the_step() -> None:
    quiet = [lag_second(t, [0.2] * 20) for t in range(100, 104)]
    busy = quiet[:3] + [lag_second(103, [0.2] * 10 + [400.0] * 10)]  # bursts: a quarter of the window's wake-ups
    late_outside = quiet + [lag_second(104, [900.0] * 20)]  # after the window: not this step's
    data = [second(t, "sse", [5.0] * 10) for t in range(100, 104)]
    ok = step_row("sse", WINDOW, data + late_outside, [])
    assert ok["generator_lag_p99_ms"] == pytest.approx(0.2, rel=0.01) and ok["valid"] is True
    row = step_row("sse", WINDOW, data + busy, [])
    assert row["generator_lag_p99_ms"] == pytest.approx(400.0, rel=0.01)
    assert row["generator_lag_max_ms"] == pytest.approx(400.0, rel=0.01)
    assert "generator_lagging" in row["flags"] and row["valid"] is False
    assert step_row("sse", WINDOW, data + busy, [], lag_limit_ms=500.0)["valid"] is True


def test_unsettled_memory_is_flagged_but_the_step_still_counts_for_latency() -> None:
    window = {**WINDOW, "settle_s": 30.0, "settled": False}
    row = step_row("sse", window, [second(101, "sse", [1.0])], [])
    assert "memory_unsettled" in row["flags"] and row["valid"] is True
    assert (row["settle_s"], row["settled"]) == (30.0, False)
    settled = step_row("sse", {**WINDOW, "settle_s": 2.5, "settled": True}, [second(101, "sse", [1.0])], [])
    assert "memory_unsettled" not in settled["flags"]


def test_bytes_per_client_per_five_minutes_split_into_payload_and_overhead() -> None:
    # 10 clients, 4 s window: 8000 B received (6000 of them payload), 400 B sent.
    seconds = [second(t, "ws", [1.0] * 5, bytes_received=2000, bytes_sent=100, payload_bytes=1500, missed_ticks=1)
               for t in range(100, 104)]
    row = step_row("ws", WINDOW, seconds, [])
    assert row["payload_bytes"] == 6000
    assert row["bytes_per_client_5min"] == pytest.approx(8400 / 10 / 4 * 300)
    assert row["payload_per_client_5min"] == pytest.approx(6000 / 10 / 4 * 300)
    assert row["overhead_per_client_5min"] == pytest.approx(2400 / 10 / 4 * 300)
    assert row["missed_ticks"] == 4


def test_request_latency_percentiles_come_from_the_request_histograms() -> None:
    histogram = new_histogram()
    for value_ms in [10.0] * 98 + [2500.0] * 2:
        histogram.record_value(int(value_ms * 1000))
    seconds = [second(101, "poll", [], requests=100, request_hist=encode_histogram(histogram))]
    row = step_row("poll", WINDOW, seconds, [])
    assert row["request_p50_ms"] == pytest.approx(10.0, rel=0.01)
    assert row["request_p99_ms"] == pytest.approx(2500.0, rel=0.01)


def test_seconds_without_any_activity_still_count_in_the_duration() -> None:
    # Viewers polling every 10 s leave most seconds without a timeline row.
    window = {**WINDOW, "t_start": 100.5, "t_end": 110.2}
    seconds = [second(101, "poll", [4000.0] * 10, requests=10), second(108, "poll", [6000.0] * 10, requests=10)]
    row = step_row("poll", window, seconds, [])
    assert row["duration_s"] == 9  # seconds 101..109 lie wholly inside
    assert row["rps"] == pytest.approx(20 / 9)


def test_one_hiccup_in_a_short_window_does_not_void_it() -> None:
    data = [second(t, "sse", [5.0] * 10) for t in range(100, 104)]
    hiccup = [lag_second(t, [0.2] * 20) for t in range(100, 103)] + [lag_second(103, [0.2] * 19 + [500.0])]
    row = step_row("sse", WINDOW, data + hiccup, [])  # 80 wake-ups: judged at p90, not at their maximum
    assert row["generator_lag_max_ms"] == pytest.approx(500.0, rel=0.01) and row["valid"] is True


def test_conditional_and_cache_figures_per_step() -> None:
    # 4 s window: 40 polls, 30 of them 304s; 28 answered by the cache, 12 by the handler.
    seconds = [second(t, "poll", [1.0], requests=10, not_modified=7 + (t == 100), bytes_saved=700,
                      cache_hits=7, cache_misses=3, cache_age_s=4) for t in range(100, 104)]
    row = step_row("poll", WINDOW, seconds, [])
    assert (row["not_modified"], row["bytes_saved"]) == (29, 2800)
    assert (row["cache_hits"], row["cache_misses"]) == (28, 12)
    assert row["cache_hit_rps"] == pytest.approx(7.0) and row["handler_rps"] == pytest.approx(3.0)
    assert row["cache_age_mean_s"] == pytest.approx(16 / 40)
    # No answer carried a cache header: the cache figures are unknown, not zero.
    plain = step_row("poll", WINDOW, [second(101, "poll", [1.0], requests=10)], [])
    assert plain["not_modified"] == 0 and plain["cache_hits"] is None and plain["handler_rps"] is None


def test_long_polls_are_held_connections_flagged_when_short() -> None:
    held = step_row("longpoll", WINDOW, [{**second(101, "longpoll", [1.0]), "open_connections": 6}], [])
    assert held["connections"] == 6 and "connections_short" in held["flags"]
    polled = step_row("poll", WINDOW, [{**second(101, "poll", [1.0]), "open_connections": 6}], [])
    assert "connections_short" not in polled["flags"]


def test_websocket_pattern_figures_per_window() -> None:
    # Presence: 4 s, 10 indicators sent per second into rooms of 5, each heard by the 4 others.
    presence = [second(t, "presence", [2.0] * 40, messages_sent=10, messages_received=50, sent_room_members=50)
                for t in range(100, 104)]
    row = step_row("presence", WINDOW, presence, [])
    assert row["room_size"] == 5 and row["fanout"] == 4
    assert row["msgs_in_per_s"] == 10 and row["msgs_out_per_s"] == 50
    # Signalling: 20 notices and 10 fetches per second for 20 events: half a round trip per event.
    signal = [second(t, "signal", [3.0] * 20, round_trips=10, notifications=20) for t in range(100, 104)]
    row = step_row("signal", WINDOW, signal, [])
    assert row["round_trips_per_event"] == 0.5 and row["notifications"] == 80
    assert row["room_size"] is None and row["messages_sent"] is None  # not counted: unknown, not zero
    rpc = [second(t, "rpc", [], unanswered=1, in_flight=2) for t in range(100, 104)]
    row = step_row("rpc", WINDOW, rpc, [])
    assert (row["unanswered"], row["in_flight"], row["round_trips_per_event"]) == (4, 8, None)


def test_published_events_with_no_deliveries_make_the_step_invalid() -> None:
    from rtcap.loadtests.run.collect import Evidence

    quiet = [second(t, "sse", []) for t in range(100, 104)]
    published = Evidence(publishes=[{"t": 101.0, "ok": True, "ms": 2.0}])
    row = step_row("sse", WINDOW, quiet, [sample(101, "target", 100, 1.0, tcp=10)], evidence=published)
    assert "no_deliveries" in row["flags"] and row["valid"] is False
    # A window too short to hold a whole second cannot be judged: nothing was due there.
    short = {**WINDOW, "t_start": 100.3, "t_end": 101.2}
    row = step_row("sse", short, quiet, [sample(100.5, "target", 100, 1.0, tcp=10)],
                   evidence=Evidence(self_publish_rate=1.0))
    assert "no_deliveries" not in row["flags"]


def test_failed_health_probes_a_stopped_process_and_failed_publishes_are_the_targets_fault() -> None:
    from rtcap.loadtests.run.collect import Evidence
    from rtcap.reports.flags import TARGET_FLAGS

    seconds = [second(t, "sse", [1.0] * 10) for t in range(100, 104)]
    samples = [sample(101, "target", 100, 1.0, tcp=10)]
    health = Evidence(health=[{"t": 101.0, "ok": True}, {"t": 102.0, "ok": False, "error": "timed out"}])
    assert "target_unresponsive" in step_row("sse", WINDOW, seconds, samples, evidence=health)["flags"]
    frozen = [{**samples[0], "state": "stopped"}]
    assert "target_unresponsive" in step_row("sse", WINDOW, seconds, frozen)["flags"]
    failing = Evidence(publishes=[{"t": 101.0, "ok": True, "ms": 1.0},
                                  {"t": 102.0, "ok": False, "ms": 3.0, "error": "answered 500: busy"}])
    row = step_row("sse", WINDOW, seconds, samples, evidence=failing)
    assert (row["published"], row["publish_errors"], row["publish_error"]) == (2, 1, "answered 500: busy")
    assert "publish_failed" in row["flags"] and not row["valid"]
    gone = step_row("sse", WINDOW, seconds, samples, evidence=Evidence(gone_at=103.0))
    assert set(gone["flags"].split(";")) & TARGET_FLAGS == {"target_down"}
