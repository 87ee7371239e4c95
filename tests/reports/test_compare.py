"""Differences between runs: two fixture runs whose truth differs in some figures and not in others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rtcap.reports.compare import comparison_frame, p99_interval, welch
from rtcap.reports.content import build_report
from tests.reports.conftest import NOISE, TRUTH, truth_steps

LATENCY = ["latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms", "latency_mean_ms"]


def other_truth() -> pd.DataFrame:
    """The baseline's steps with: SSE holding 10% more memory per connection (truth differs), WebSocket the
    same memory per connection under other measurement noise (truth equal), WebSocket latency tripled."""
    steps = truth_steps()
    for transport, factor in (("sse", 1.1), ("ws", 1.0)):
        t = TRUTH[transport]
        for i, conns in enumerate(t["conns"]):
            row = (steps["transport"] == transport) & (steps["step"] == i)
            extra = float(steps.loc[row, "rss_bytes"].iloc[0]) - (t["base"] + t["slope"] * conns + NOISE[i])
            # Reversed noise: same truth, another run's scatter.
            steps.loc[row, "rss_bytes"] = t["base"] + factor * t["slope"] * conns + NOISE[::-1][i] + extra
    ws = steps["transport"] == "ws"
    steps.loc[ws, LATENCY] *= 3
    return steps


@pytest.fixture
def two_runs(run_dir: Path, make_run: Any) -> list[dict[str, Any]]:
    return build_report([run_dir, make_run("other", other_truth())]).comparison


def rows_of(rows: list[dict[str, Any]], transport: str) -> dict[str, dict[str, Any]]:
    return {"delivery p99" if r["figure"].startswith("delivery p99") else r["figure"]: r
            for r in rows if r["transport"] == transport}


def test_a_real_difference_and_noise_are_told_apart(two_runs: list[dict[str, Any]]) -> None:
    sse, ws, poll = rows_of(two_runs, "sse"), rows_of(two_runs, "ws"), rows_of(two_runs, "poll")
    mem = sse["memory per connection"]
    assert mem["verdict"] == "higher" and mem["run_a"] == "baseline" and mem["run_b"] == "other"
    assert mem["difference"] == pytest.approx(2048, rel=0.01)  # the 10% the truth added
    lo, hi = mem["difference_ci95"]
    assert lo < 2048 < hi and lo > 0
    # Same truth, other noise: a slope that moved a little, inside its own uncertainty.
    same = ws["memory per connection"]
    assert same["verdict"] == "within noise" and same["difference"] != 0
    assert same["difference_ci95"][0] < 0 < same["difference_ci95"][1]
    # Latency tripled for WebSocket at the most users both runs drove; SSE's latency did not move.
    p99 = ws["delivery p99"]
    assert p99["figure"] == "delivery p99 at 4,800 users" and p99["verdict"] == "higher"
    assert p99["difference"] == pytest.approx(160.0)
    assert sse["delivery p99"]["verdict"] == "within noise"
    for t in (sse, ws, poll):
        assert t["capacity at SLO"]["verdict"] == "within noise"
        assert t["CPU per delivered event" if t is not poll else "CPU per request"]["verdict"] == "within noise"
    assert sse["bytes per event"]["verdict"] == "within noise" and poll["bytes per request"]["difference"] == 0
    assert poll["memory per connection"]["verdict"] == "within noise"


def test_capacity_uses_the_step_grid(run_dir: Path, make_run: Any) -> None:
    steps = truth_steps()
    row = (steps["transport"] == "sse") & (steps["step"] == 5)
    steps.loc[row, LATENCY] = steps.loc[row, LATENCY] * 0.5  # p99 750 ms: now within the SLO
    cap = rows_of(build_report([run_dir, make_run("faster", steps)]).comparison, "sse")["capacity at SLO"]
    # 1,600 (the limit somewhere below 3,200) against 3,200 and beyond: the intervals do not touch.
    assert (cap["a"]["value"], cap["a"]["hi"], cap["b"]["value"], cap["b"]["hi"]) == (1600, 3200, 3200, None)
    assert cap["verdict"] == "higher" and cap["difference"] == 1600


def test_welch_and_p99_interval() -> None:
    a = {"value": 10.0, "se": 1.0, "df": 4.0}
    diff, ci = welch(a, {"value": 13.0, "se": 1.0, "df": 4.0})
    assert diff == 3.0 and ci is not None
    # df = (2)^2 / (1/4 + 1/4) = 8: half-width t(0.975, 8) * sqrt(2) = 2.306 * 1.414.
    assert ci == pytest.approx([3 - 3.2612, 3 + 3.2612], abs=1e-3)
    assert welch(a, {"value": 13.0, "se": None, "df": None}) == (3.0, None)
    row = pd.Series({"latency_p50_ms": 10.0, "latency_p95_ms": 50.0, "latency_p99_ms": 80.0,
                     "latency_max_ms": 100.0, "delivered": 30_000.0, "connections": 1000.0})
    push, poll = p99_interval(row, push=True), p99_interval(row, push=False)
    assert push is not None and poll is not None
    # 30 published events (push) give a far wider interval than 30,000 independent polls.
    assert push[0] < poll[0] <= 80.0 <= poll[1] < push[1] <= 100.0


def test_comparison_table(two_runs: list[dict[str, Any]]) -> None:
    frame = comparison_frame(two_runs)
    assert list(frame.columns) == ["transport", "figure", "baseline (95% range)", "other (95% range)",
                                   "difference", "verdict"]
    mem = frame[(frame["transport"] == "SSE") & (frame["figure"] == "memory per connection")].iloc[0]
    assert mem["baseline (95% range)"] == "20.0 KiB" and mem["other (95% range)"] == "22.0 KiB"
    assert mem["difference"].startswith("+2.0 KiB") and mem["difference"].endswith("+10.0%")
    cap = frame[(frame["transport"] == "Delta polling") & (frame["figure"] == "capacity at SLO")].iloc[0]
    assert cap["baseline (95% range)"] == "3,200 (3,200 to ∞)"


def test_a_shorter_sweep_is_no_evidence(run_dir: Path, make_run: Any) -> None:
    steps = truth_steps()
    short = steps[(steps["transport"] == "sse") & (steps["step"] < 2)]  # stopped at 200 with the SLO met
    cap = rows_of(build_report([run_dir, make_run("short", short)]).comparison, "sse")["capacity at SLO"]
    assert cap["difference"] == -1400 and cap["verdict"] == "inconclusive: a lower bound"
