"""Capacity model: linear memory-per-connection fits and capacity at an SLO."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rtcap.reports.flags import MEMORY_UNSETTLED, has_flag

MIN_FIT_POINTS = 3  # a line through two points has no residuals, hence no error estimate
RECOMMENDED_FIT_POINTS = 5
MIN_R2 = 0.9
MAX_CI_RELATIVE = 0.25


class FitError(ValueError):
    """Too few usable points to fit a line."""


@dataclass(frozen=True)
class LineFit:
    """Least-squares line y = slope * x + intercept with a 95% CI on the slope."""

    slope: float
    intercept: float
    ci95: tuple[float, float]
    r2: float
    n: int
    stderr: float

    def predict(self, x: float | np.ndarray) -> float | np.ndarray:
        """Evaluate the line at `x`."""
        return self.intercept + self.slope * x


def t95(df: float) -> float:
    """Two-sided 95% Student t quantile for `df` degrees of freedom."""
    from scipy import stats  # here, not at the top: importing scipy.stats takes about a second

    return float(stats.t.ppf(0.975, df))


def fit_line(x: Sequence[float] | np.ndarray | pd.Series,
             y: Sequence[float] | np.ndarray | pd.Series) -> LineFit:
    """Fit y against x with scipy.stats.linregress; NaN pairs are dropped.

    Raises FitError with fewer than MIN_FIT_POINTS distinct x values.
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y differ in length ({xs.size} vs {ys.size})")
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    distinct = np.unique(xs).size
    if distinct < MIN_FIT_POINTS:
        raise FitError(f"{distinct} distinct x value(s); need >= {MIN_FIT_POINTS} to fit")
    from scipy import stats  # here, not at the top: importing scipy.stats takes about a second

    res = stats.linregress(xs, ys)
    n = int(xs.size)
    # Student t rather than 1.96: capacity runs have a handful of steps, not hundreds.
    half = t95(n - 2) * float(res.stderr)
    r2 = float(res.rvalue) ** 2 if math.isfinite(res.rvalue) else float("nan")
    return LineFit(slope=float(res.slope), intercept=float(res.intercept),
                   ci95=(float(res.slope) - half, float(res.slope) + half),
                   r2=r2, n=n, stderr=float(res.stderr))


@dataclass(frozen=True)
class FitSelection:
    """The steps a memory fit uses, and how many valid steps had unsettled memory."""

    rows: pd.DataFrame
    unsettled: int
    fallback: bool  # unsettled steps kept because too few settled ones remained


def _fit_points(rows: pd.DataFrame, column: str) -> int:
    """Distinct connection counts with a known `column` value: what fit_line needs >= 3 of."""
    known = rows["connections"].notna() & pd.to_numeric(rows[column], errors="coerce").notna()
    return int(rows.loc[known, "connections"].nunique())


def select_fit_steps(steps: pd.DataFrame, column: str = "rss_bytes") -> FitSelection:
    """Valid steps of one transport minus those flagged memory_unsettled, unless too few remain."""
    valid = steps[steps["valid"].astype(bool)]
    unsettled = has_flag(valid, MEMORY_UNSETTLED)
    settled = valid[~unsettled]
    n_unsettled = int(unsettled.sum())
    # Memory still moving when measured would bend the slope; but a fit over all valid steps,
    # with a warning, says more than no fit at all.
    if n_unsettled and _fit_points(settled, column) < MIN_FIT_POINTS:
        return FitSelection(rows=valid, unsettled=n_unsettled, fallback=True)
    return FitSelection(rows=settled, unsettled=n_unsettled, fallback=False)


def memory_fit(steps: pd.DataFrame, column: str = "rss_bytes") -> LineFit | None:
    """Fit `column` against connections over one transport's fit steps; None if too few.

    Fit steps are the valid steps whose memory settled (see select_fit_steps).
    """
    rows = select_fit_steps(steps, column).rows
    try:
        return fit_line(rows["connections"], rows[column])
    except FitError:
        return None


def settle_warnings(selection: FitSelection) -> list[str]:
    """Warnings about valid steps whose memory had not settled when measured."""
    n = selection.unsettled
    if not n:
        return []
    steps = f"{n} step{'s' * (n != 1)}"
    if selection.fallback:
        return [f"{steps} with memory not settled; fewer than {MIN_FIT_POINTS} settled steps remain, "
                f"so the memory fit uses all {len(selection.rows)} valid steps, unsettled ones included"]
    return [f"{steps} left out of the memory fit: target memory had not settled within the "
            "maximum settle time"]


def fit_warnings(fit: LineFit | None, usable_points: int) -> list[str]:
    """Plain-language warnings about how far a memory fit can be trusted."""
    if fit is None:
        return [f"fit not possible: {usable_points} valid step(s) with memory and connections; "
                f"need >= {MIN_FIT_POINTS} distinct connection counts"]
    out: list[str] = []
    if fit.n < RECOMMENDED_FIT_POINTS:
        out.append(f"fit over {fit.n} steps; >= {RECOMMENDED_FIT_POINTS} plateaus recommended")
    if math.isfinite(fit.r2) and fit.r2 < MIN_R2:
        out.append(f"R^2 {fit.r2:.2f} < {MIN_R2}: memory not linear in connections")
    lo, hi = fit.ci95
    if fit.slope == 0 or (hi - lo) / 2 > MAX_CI_RELATIVE * abs(fit.slope):
        out.append(f"CI95 wider than ±{MAX_CI_RELATIVE:.0%} of slope")
    return out


def capacity_at_slo(steps: pd.DataFrame, slo: Mapping[str, float]) -> tuple[int | None, int | None]:
    """Largest (connections, users) of a valid step meeting the SLO in one transport's steps.

    A step meets the SLO when latency_p99_ms <= slo["delivery_p99_ms"] and
    error_rate <= slo["error_rate"]; unknown (NaN) values never meet it.
    Returns (None, None) if no step qualifies; connections is None when unmeasured.
    """
    p99 = pd.to_numeric(steps["latency_p99_ms"], errors="coerce")
    err = pd.to_numeric(steps["error_rate"], errors="coerce")
    ok = (steps["valid"].astype(bool)
          & (p99 <= float(slo["delivery_p99_ms"]))
          & (err <= float(slo["error_rate"])))
    good = steps[ok.fillna(False)]
    if good.empty:
        return None, None
    # Sort by what the target actually held; users breaks ties and covers unmeasured connections.
    best = good.sort_values(["connections", "users"], na_position="first").iloc[-1]
    conns = None if pd.isna(best["connections"]) else int(round(float(best["connections"])))
    users = None if pd.isna(best["users"]) else int(best["users"])
    return conns, users
