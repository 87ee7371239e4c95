"""The Ably-shaped comparison end to end, small: full-state vs delta polling vs SSE vs WebSocket."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtcap.bench.wire import WirePlan, comparison, run_comparison

pytestmark = pytest.mark.solo  # latency and bytes of four transports: nothing else runs meanwhile (tests/solo.py)


def test_full_state_polling_costs_the_most_bytes_and_push_the_least_latency(tmp_path: Path) -> None:
    plan = WirePlan(poll_interval=2.0, rate=1.0, state_bytes=4096, steps="6", hold=7.0, settle_max=0.0)
    table = comparison(run_comparison(tmp_path, plan)).set_index("transport")
    assert list(table.index) == ["state", "poll", "sse", "ws"]
    wire, latency = table["bytes_per_client_5min"], table["latency_mean_ms"]
    # Every full state carries the 4 KiB board: 150 polls in 5 minutes are at least 600 KiB of data.
    assert table.loc["state", "payload_per_client_5min"] > 150 * 4096 * 0.9
    assert wire["state"] > 8 * wire["poll"] > 8 * max(wire["sse"], wire["ws"])
    # Polls every 2 s leave news about 1 s old; pushed news arrives within milliseconds.
    assert 500 < latency["poll"] < 1500 and 500 < latency["state"] < 1500
    assert max(latency["sse"], latency["ws"]) < 100
    assert table.loc["ws", "overhead_per_client_5min"] < table.loc["poll", "overhead_per_client_5min"]
    assert (table["valid_steps"] == 1).all()
