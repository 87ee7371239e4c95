"""Truth tests: rtcap's figures against what the reference target was told to inject (small sizes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtcap.bench.truth import ballast_slopes, delay_shift, fault_counts, multiples, wire_bytes

pytestmark = pytest.mark.solo  # memory slopes, latency and bytes against injected truth: alone (tests/solo.py)


def test_multiples_counts_strictly_inside() -> None:
    assert multiples(10, 30, 10) == 1  # only 20
    assert multiples(11, 41, 10) == 3  # 20, 30, 40
    assert multiples(5, 6, 10) == 0


def test_memory_slope_grows_by_exactly_the_ballast(tmp_path: Path) -> None:
    slopes = ballast_slopes(tmp_path, ballast=65536, steps="40,80,120,160", hold=2, settle_max=8)
    for transport in ("sse", "ws"):
        assert slopes[transport]["difference"] == pytest.approx(65536, rel=0.05), slopes


def test_delay_shifts_delivery_p50_by_the_delay(tmp_path: Path) -> None:
    shifts = delay_shift(tmp_path, delay_ms=50, users=5, seconds=5)
    for transport in ("sse", "ws"):
        assert shifts[transport]["shift"] == pytest.approx(50, abs=5), shifts


def test_lost_duplicated_and_reordered_equal_what_was_injected(tmp_path: Path) -> None:
    rows = fault_counts(tmp_path, users=3, seconds=5)
    assert {(r["kind"], r["transport"]) for r in rows} == {
        ("drop", "sse"), ("drop", "ws"), ("drop", "poll"), ("duplicate", "sse"), ("duplicate", "ws"),
        ("duplicate", "poll"), ("swap", "sse"), ("swap", "ws")}
    for row in rows:
        assert row["injected"] > 10, row  # a window long enough to mean something
        assert abs(row["reported"] - row["injected"]) <= row["slack"], json.dumps(row)
        # No anomaly of another kind, but for a pair cut by the window's start (a swapped partner arriving
        # after the subscriber's first event looks like a repeat of an earlier seq).
        assert sum(row["other"].values()) <= row["slack"], json.dumps(row)


def test_bytes_the_users_count_equal_what_a_proxy_forwarded(tmp_path: Path) -> None:
    rows = wire_bytes(tmp_path, users=3, seconds=4)
    assert [r["transport"] for r in rows] == ["poll", "sse", "ws"]
    for row in rows:
        assert row["client_received"] > 1000 and row["client_sent"] > 0, row
        assert row["client_sent"] == row["proxy_up"], row
        # Equal, but for what a user stopped mid-delivery never read: at most one answer each (a poll
        # answer here is under 2 KiB; an event under 300 B).
        assert 0 <= row["unread"] <= row["users"] * 2048, row
        # Application bytes are a part of the wire bytes, never more.
        assert 0 < row["payload_received"] < row["client_received"], row
