"""Tests for rtcap.reports.wire: the per-client bytes comparison (Ably's table, from measured steps)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rtcap.reports import wire
from rtcap.reports.rundir import load_runs

# Hand-computed from the fixture's WIRE model (conftest.py): per user and 30 s window, 30 events
# and 10 requests (polling) or 1 request (push); per client over 5 min everything is x10.
#   state: wire 10*(30*2400 + 10*90) = 729,000; payload 10*30*2000 = 600,000; overhead 129,000
#   poll:  wire 10*(30*300 + 10*90)  =  99,000; payload 10*30*100  =  30,000; overhead  69,000
#   sse:   wire 10*(30*120 + 1*300)  =  39,000; payload 10*30*70   =  21,000; overhead  18,000
#   ws:    wire 10*(30*110 + 1*300)  =  36,000; payload 10*30*66   =  19,800; overhead  16,200
# Bytes per event = wire per window / 30; mean latency = p99 / 3, median over valid steps.
EXPECTED = {
    "state": (729_000.0, 600_000.0, 129_000.0, 2430.0, 1000 / 3),
    "poll": (99_000.0, 30_000.0, 69_000.0, 330.0, (700 + 800) / 2 / 3),
    "sse": (39_000.0, 21_000.0, 18_000.0, 130.0, (30 + 60) / 2 / 3),
    "ws": (36_000.0, 19_800.0, 16_200.0, 120.0, (15 + 20) / 2 / 3),
}


def test_numbers_match_hand_computed_medians(run_dir: Path) -> None:
    nums = wire.wire_numbers(load_runs([run_dir])[0]).set_index("transport")
    assert list(nums.index) == ["state", "poll", "sse", "ws"]  # polling first, whatever meta says
    for transport, (total, payload, overhead, per_event, latency) in EXPECTED.items():
        row = nums.loc[transport]
        assert row["bytes_per_client_5min"] == pytest.approx(total)
        assert row["payload_per_client_5min"] == pytest.approx(payload)
        assert row["overhead_per_client_5min"] == pytest.approx(overhead)
        assert row["bytes_per_event"] == pytest.approx(per_event)
        assert row["latency_mean_ms"] == pytest.approx(latency)
    assert nums.loc["state", "overhead_ratio"] == pytest.approx(129_000 / 16_200)
    assert nums["is_baseline"].tolist() == [False, False, False, True]
    assert (nums.loc["sse", "valid_steps"], nums.loc["sse", "steps"]) == (6, 7)


def test_formatted_table(run_dir: Path) -> None:
    frame, notes = wire.wire_table(load_runs([run_dir])[0])
    assert notes == []
    assert list(frame.columns) == ["transport", *wire.COLUMNS]
    rows = frame.set_index("transport")
    assert list(rows.index) == ["Full-state polling", "Delta polling", "SSE", "WebSocket"]
    assert rows.loc["Full-state polling"].tolist() == [
        "126.0 KiB", "333 ms", "585.9 KiB", "711.9 KiB", "8.0x", "2.4 KiB", "5 of 6"]
    assert rows.loc["Delta polling"].tolist() == [
        "67.4 KiB", "250 ms", "29.3 KiB", "96.7 KiB", "4.3x", "330 B", "6 of 6"]
    assert rows.loc["SSE", "Overhead ratio"] == "1.1x"
    assert rows.loc["WebSocket", "Overhead ratio"] == "baseline"
    assert rows.loc["WebSocket", "Average latency"] == "5.8 ms"


def test_median_over_valid_steps_only() -> None:
    steps = pd.DataFrame({
        "transport": ["ws"] * 4, "run": ["r"] * 4, "valid": [True, True, True, False],
        "users": [10] * 4, "duration_s": [30.0] * 4, "delivered": [300] * 4,
        "bytes_received": [0.0] * 4, "bytes_sent": [0.0] * 4, "bytes_per_event": [1.0, 2.0, 3.0, 99.0],
        "bytes_per_client_5min": [1000.0, 3000.0, 2000.0, 1e9],
        "payload_per_client_5min": [500.0, 500.0, 500.0, 1e9], "overhead_per_client_5min": [float("nan")] * 4,
        "latency_mean_ms": [10.0, 30.0, 20.0, 5000.0],
    })
    got = wire.transport_wire(steps)
    assert got["bytes_per_client_5min"] == 2000.0  # over all four steps it would be 2500
    assert got["overhead_per_client_5min"] == 1500.0  # derived per step: wire - payload
    assert got["latency_mean_ms"] == 20.0 and got["bytes_per_event"] == 2.0


def test_recorded_columns_win_over_derivation(make_run, run_dir: Path) -> None:
    steps = pd.read_csv(run_dir / "steps.csv")
    steps.loc[steps["transport"] == "ws", "bytes_per_client_5min"] = 50_000.0
    nums = wire.wire_numbers(load_runs([make_run("recorded", steps)])[0]).set_index("transport")
    assert nums.loc["ws", "bytes_per_client_5min"] == 50_000.0


def test_old_run_shows_wire_totals_and_says_overhead_unavailable(old_run_dir: Path) -> None:
    frame, notes = wire.wire_table(load_runs([old_run_dir])[0])
    rows = frame.set_index("transport")
    assert list(rows.index) == ["Delta polling", "SSE", "WebSocket"]
    # Derived from bytes_received + bytes_sent, the collect stage's own formula.
    assert rows["Wire total (5 min)"].tolist() == ["96.7 KiB", "38.1 KiB", "35.2 KiB"]
    assert set(rows["Total overhead (5 min)"]) == {"–"} and set(rows["Overhead ratio"]) == {"–"}
    assert set(rows["Data from server (5 min)"]) == {"–"}
    assert len(notes) == 1 and notes[0].startswith("Overhead unavailable for Delta polling, SSE, WebSocket")


def test_two_runs_one_row_each_and_one_baseline(run_dir: Path, old_run_dir: Path) -> None:
    frame, notes = wire.wire_table(load_runs([run_dir, old_run_dir])[0])
    assert list(frame.columns[:2]) == ["run", "transport"]
    assert list(zip(frame["transport"], frame["run"]))[:3] == [
        ("Full-state polling", "baseline"), ("Delta polling", "baseline"), ("Delta polling", "old")]
    assert frame["Overhead ratio"].tolist().count("baseline") == 1
    assert "Delta polling (old)" in notes[0]


def test_zero_payload_means_not_counted() -> None:
    # The collect stage writes payload 0 and no overhead for clients that do not count payload.
    steps = pd.DataFrame({
        "transport": ["custom"] * 3, "valid": [True] * 3, "users": [10] * 3, "duration_s": [30.0] * 3,
        "delivered": [300] * 3, "bytes_received": [9000.0] * 3, "bytes_sent": [0.0] * 3,
        "bytes_per_event": [30.0] * 3, "payload_bytes": [0.0] * 3, "bytes_per_client_5min": [9000.0] * 3,
        "payload_per_client_5min": [0.0] * 3, "overhead_per_client_5min": [float("nan")] * 3,
    })
    got = wire.transport_wire(steps)
    assert got["bytes_per_client_5min"] == 9000.0
    assert got["payload_per_client_5min"] is None and got["overhead_per_client_5min"] is None


def test_raw_csv_frame_gives_the_same_numbers(run_dir: Path) -> None:
    # bench/wire.py reads steps.csv with plain pandas; empty or text validity must still count.
    raw = pd.read_csv(run_dir / "steps.csv")
    raw["valid"] = raw["valid"].map({True: "", False: "false"})
    loaded = wire.wire_numbers(load_runs([run_dir])[0]).drop(columns="run")
    pd.testing.assert_frame_equal(wire.wire_numbers(raw).drop(columns="run"), loaded)
