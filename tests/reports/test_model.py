"""Tests for rtcap.reports.model: line fits and capacity at SLO."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rtcap.reports.model import (FitError, LineFit, capacity_at_slo, fit_line, fit_warnings, memory_fit,
                           select_fit_steps, settle_warnings)

SLO = {"delivery_p99_ms": 1000.0, "error_rate": 0.01}


def test_fit_line_recovers_known_slope_and_ci_contains_truth() -> None:
    x = np.array([100, 200, 400, 800, 1600, 3200], dtype=float)
    noise = np.array([3000.0, -2500.0, 1500.0, -3500.0, 2000.0, -500.0])
    fit = fit_line(x, 50 * 2**20 + 20480.0 * x + noise)
    assert fit.slope == pytest.approx(20480.0, rel=1e-3)
    assert fit.ci95[0] < 20480.0 < fit.ci95[1]
    assert fit.intercept == pytest.approx(50 * 2**20, rel=1e-3)
    assert fit.n == 6 and fit.stderr > 0
    assert 0.99 < fit.r2 <= 1.0


def test_fit_line_exact_data_has_r2_one_and_zero_width_ci() -> None:
    fit = fit_line([1, 2, 3, 4], [10, 20, 30, 40])
    assert fit.r2 == pytest.approx(1.0)
    assert fit.slope == pytest.approx(10.0)
    assert fit.ci95[0] == pytest.approx(fit.ci95[1])
    assert fit.predict(5.0) == pytest.approx(50.0)


def test_fit_line_drops_nan_pairs() -> None:
    fit = fit_line([1, 2, float("nan"), 3, 4], [2, 4, 100, float("nan"), 8])
    assert fit.n == 3 and fit.slope == pytest.approx(2.0)


@pytest.mark.parametrize("x", [[1, 2], [1, 1, 1, 2], []])
def test_fit_line_needs_three_distinct_x(x: list[float]) -> None:
    with pytest.raises(FitError, match="distinct"):
        fit_line(x, [float(v) for v in x])


def test_fit_line_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        fit_line([1, 2, 3], [1, 2])


def test_ci_is_student_t_wide_for_few_points() -> None:
    fit = fit_line([1, 2, 3], [1.0, 2.5, 3.0])
    # t(0.975, 1) = 12.706: with one degree of freedom the CI is very wide.
    assert (fit.ci95[1] - fit.slope) / fit.stderr == pytest.approx(12.706, rel=1e-3)


def steps(rows: list[tuple]) -> pd.DataFrame:
    """A minimal steps frame: (step, users, connections, p99, error_rate, valid, rss)."""
    cols = ["step", "users", "connections", "latency_p99_ms", "error_rate", "valid", "rss_bytes"]
    return pd.DataFrame(rows, columns=cols)


def test_memory_fit_excludes_invalid_steps() -> None:
    df = steps([(i, c, c, 10, 0, True, 1000 + 5 * c) for i, c in enumerate([10, 20, 30, 40])]
               + [(4, 50, 50, 10, 0, False, 10**9)])
    fit = memory_fit(df)
    assert fit is not None and fit.slope == pytest.approx(5.0) and fit.n == 4


def test_memory_fit_none_with_too_few_valid_steps() -> None:
    df = steps([(0, 10, 10, 1, 0, True, 100), (1, 20, 20, 1, 0, True, 200), (2, 30, 30, 1, 0, False, 300)])
    assert memory_fit(df) is None


def test_fit_warnings() -> None:
    assert "need >= 3" in fit_warnings(None, 2)[0]
    few = LineFit(slope=100.0, intercept=0.0, ci95=(50.0, 150.0), r2=0.5, n=3, stderr=4.0)
    text = " | ".join(fit_warnings(few, 3))
    assert "fit over 3 steps; >= 5 plateaus recommended" in text
    assert "R^2 0.50 < 0.9" in text
    assert "CI95 wider than ±25% of slope" in text
    good = LineFit(slope=100.0, intercept=0.0, ci95=(99.0, 101.0), r2=0.999, n=6, stderr=0.4)
    assert fit_warnings(good, 6) == []


def test_capacity_picks_largest_step_within_slo() -> None:
    df = steps([(0, 100, 98.0, 50, 0, True, 0), (1, 200, 199.6, 400, 0.005, True, 0),
                (2, 400, 390, 1500, 0, True, 0)])
    assert capacity_at_slo(df, SLO) == (200, 200)


def test_capacity_skips_invalid_and_error_rate_breaches() -> None:
    df = steps([(0, 100, 100, 50, 0, True, 0), (1, 200, 200, 60, 0.02, True, 0),
                (2, 400, 400, 70, 0, False, 0)])
    assert capacity_at_slo(df, SLO) == (100, 100)


def test_capacity_none_when_nothing_meets_slo() -> None:
    df = steps([(0, 100, 100, 5000, 0, True, 0), (1, 200, 200, float("nan"), 0, True, 0)])
    assert capacity_at_slo(df, SLO) == (None, None)


def test_capacity_falls_back_to_users_when_connections_unmeasured() -> None:
    df = steps([(0, 100, math.nan, 50, 0, True, 0), (1, 200, math.nan, 60, 0, True, 0)])
    assert capacity_at_slo(df, SLO) == (None, 200)


def flagged(rows: list[tuple], flags: list[str]) -> pd.DataFrame:
    """A minimal steps frame with a flags column."""
    return steps(rows).assign(flags=flags)


def test_memory_fit_leaves_out_unsettled_steps() -> None:
    rows = [(i, c, c, 10, 0, True, 1000 + 5 * c) for i, c in enumerate([10, 20, 30, 40])]
    rows.append((4, 50, 50, 10, 0, True, 10**9))  # valid, but memory still moving
    df = flagged(rows, ["", "", "generator_lagging;x", "", "memory_unsettled"])
    sel = select_fit_steps(df)
    assert (sel.unsettled, sel.fallback, len(sel.rows)) == (1, False, 4)
    fit = memory_fit(df)
    assert fit is not None and fit.slope == pytest.approx(5.0) and fit.n == 4
    assert settle_warnings(sel) == ["1 step left out of the memory fit: target memory had not settled "
                                    "within the maximum settle time"]
    # Without the flag the same outlier is fitted: the exclusion is what keeps the slope.
    assert memory_fit(df.assign(flags="")).slope != pytest.approx(5.0, rel=0.1)


def test_memory_fit_falls_back_to_all_valid_steps_when_too_few_settled() -> None:
    rows = [(i, c, c, 10, 0, True, 1000 + 5 * c) for i, c in enumerate([10, 20, 30, 40])]
    rows.append((4, 50, 50, 10, 0, False, 10**9))
    df = flagged(rows, ["", "memory_unsettled", "memory_unsettled", "", "generator_saturated"])
    sel = select_fit_steps(df)
    assert (sel.unsettled, sel.fallback, len(sel.rows)) == (2, True, 4)  # invalid step still out
    fit = memory_fit(df)
    assert fit is not None and fit.n == 4 and fit.slope == pytest.approx(5.0)
    [warning] = settle_warnings(sel)
    assert warning == ("2 steps with memory not settled; fewer than 3 settled steps remain, so the "
                       "memory fit uses all 4 valid steps, unsettled ones included")


def test_memory_fit_without_flags_column_uses_valid_steps() -> None:
    df = steps([(i, c, c, 10, 0, True, 7 * c) for i, c in enumerate([10, 20, 30])])
    sel = select_fit_steps(df)
    assert (sel.unsettled, sel.fallback) == (0, False) and settle_warnings(sel) == []
    assert memory_fit(df).slope == pytest.approx(7.0)
