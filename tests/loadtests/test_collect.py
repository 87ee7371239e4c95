"""Joining windows, timeline seconds and samples into step rows."""

import json
from pathlib import Path

import pytest

from loadtests.collect import collect_transport, label_samples, step_row
from loadtests.timeline import encode_histogram, new_histogram


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
