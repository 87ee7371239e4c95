"""The patterns table: only transports that measured a pattern, only the figures they have, in their units."""

from __future__ import annotations

import pandas as pd

from rtcap.reports.patterns import patterns_frame
from rtcap.reports.summary import pattern_figures


def test_rows_and_columns_follow_what_was_measured() -> None:
    summaries = {"a": {"transports": {
        "sse": {"patterns": {}},
        "poll": {"patterns": {"not_modified": 0, "bytes_saved": 0}},  # nothing to say: left out
        "state": {"patterns": {"not_modified": 2100, "bytes_saved": 3_177_000, "handler_rps": 0.29}},
        "signal": {"patterns": {"round_trips": 60, "notifications": 60, "round_trips_per_event": 1.0}},
    }}}
    frame = patterns_frame(summaries)
    assert list(frame["transport"]) == ["Full-state polling", "Signalling (WebSocket notice + REST fetch)"]
    assert list(frame.columns) == ["transport", "304 answers", "bytes saved by 304s", "handler runs/s",
                                   "round trips per update", "notices"]
    state = frame.iloc[0]
    assert (state["304 answers"], state["bytes saved by 304s"], state["handler runs/s"]) == ("2,100", "3.0 MiB", "0.29")
    assert frame.iloc[1]["304 answers"] == "–" and frame.iloc[1]["round trips per update"] == "1"
    assert patterns_frame({"a": {"transports": {"sse": {"patterns": {}}}}}).empty


def test_summary_keeps_only_the_figures_a_transport_measures() -> None:
    steps = pd.DataFrame([
        {"transport": "signal", "users": 10, "step": 0, "valid": True, "delivered": 100, "round_trips": 50,
         "notifications": 100, "unanswered": 0, "room_size": float("nan")},
        {"transport": "signal", "users": 20, "step": 1, "valid": True, "delivered": 300, "round_trips": 250,
         "notifications": 300, "unanswered": 0, "room_size": float("nan")},
        {"transport": "signal", "users": 40, "step": 2, "valid": False, "delivered": 900, "round_trips": 900,
         "notifications": 900, "unanswered": 0, "room_size": float("nan")},
    ])
    valid = steps[steps["valid"]]
    figures = pattern_figures("signal", steps, valid, valid.iloc[-1])
    # Weighted over valid steps only; totals over every step; nothing of other patterns (unanswered, room size).
    assert figures == {"round_trips": 1200, "notifications": 1300, "round_trips_per_event": 300 / 400}
    assert pattern_figures("sse", steps, valid, valid.iloc[-1]) == {}
