"""Differences between runs: the first run against each other one, per transport, with uncertainty.

Each figure carries the uncertainty one run can estimate on its own:

- memory per connection, CPU per message or request: fitted slopes with standard errors; the
  difference's 95% CI uses both (Welch-Satterthwaite degrees of freedom);
- wire bytes per message or request: pooled over valid steps, standard error from the per-step scatter;
- delivery p99 at a common load (the most users both runs drove at a valid step): a 95% interval
  from the order statistics of the step's events, interpolated between its p50, p95, p99 and max;
  push copies of one event share its fate, so push counts events published (delivered / connections),
  polling counts every delivery;
- capacity at SLO: the step grid: the limit lies between the capacity step and the next valid step
  (or beyond the sweep when the SLO held at every step).

A difference is "within noise" when its 95% CI contains zero (slopes, bytes) or when the two
intervals overlap (p99, capacity; "inconclusive: a lower bound" when capacities differ but one run's
sweep ended with the SLO still met). Only repeating a run measures run-to-run noise itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from rtcap.reports.model import t95
from rtcap.reports.units import finite, fmt_bytes, fmt_cpu, fmt_num, inf_to_none, transport_name

Z95 = 1.96
# The same in a paragraph, for the page and the markdown export.
METHOD = (
    "Each figure carries the uncertainty one run can estimate on its own. Memory per connection and CPU "
    "per event or request are fitted slopes: the 95% CI of their difference combines both standard errors. "
    "Wire bytes per event or request are pooled over valid steps, with the per-step scatter as their "
    "standard error. Delivery p99 is compared at the most users both runs drove at a valid step, each with "
    "a 95% interval from the order statistics of that step's events (push copies of one event share its "
    "fate, so push counts the events published, polling every delivery). Capacity at SLO is known to the "
    "step grid: the limit lies between the capacity step and the next valid step, or beyond the sweep. A "
    "difference is within noise when its 95% CI contains zero (slopes, bytes) or the two intervals overlap "
    "(p99, capacity); capacities that differ while one sweep ended with the SLO still met are inconclusive. "
    "Only repeating a run measures run-to-run noise itself.")


def _est(value: Any, se: Any, df: Any) -> dict[str, Any] | None:
    """A point estimate with its standard error and degrees of freedom (None when unknown)."""
    v = finite(value)
    if v is None:
        return None
    s, d = finite(se), finite(df)
    half = None if s is None or d is None or d <= 0 else t95(d) * s
    return {"value": v, "se": s, "df": d, "lo": None if half is None else v - half,
            "hi": None if half is None else v + half}


def welch(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[float, list[float] | None]:
    """b - a and its 95% CI from both standard errors (None when either is unknown)."""
    diff = b["value"] - a["value"]
    if a["se"] is None or b["se"] is None or a["df"] is None or b["df"] is None:
        return diff, None
    se = math.hypot(a["se"], b["se"])
    if se == 0:
        return diff, [diff, diff]
    df = se**4 / (a["se"] ** 4 / a["df"] + b["se"] ** 4 / b["df"])
    half = t95(df) * se
    return diff, [diff - half, diff + half]


def p99_interval(row: pd.Series, push: bool) -> tuple[float, float] | None:
    """95% interval of one step's p99 from order statistics (see the module docstring)."""
    qs = [(0.5, row["latency_p50_ms"]), (0.95, row["latency_p95_ms"]), (0.99, row["latency_p99_ms"]),
          (1.0, row["latency_max_ms"])]
    pts = [(q, float(v)) for q, v in qs if finite(v) is not None]
    delivered, conns = finite(row["delivered"]), finite(row["connections"])
    if len(pts) < 2 or not delivered:
        return None
    n = delivered / conns if push and conns else delivered
    half = Z95 * math.sqrt(n * 0.99 * 0.01)
    q_lo, q_hi = max(pts[0][0], (0.99 * n - half) / n), min(1.0, (0.99 * n + half) / n)
    xs, ys = [q for q, _ in pts], [v for _, v in pts]
    return float(np.interp(q_lo, xs, ys)), float(np.interp(q_hi, xs, ys))


def _common_step(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.Series, pd.Series] | None:
    """The valid steps of both runs at the most users both drove."""
    va, vb = a[a["valid"].astype(bool)], b[b["valid"].astype(bool)]
    common = sorted(set(va["users"].dropna()) & set(vb["users"].dropna()))
    if not common:
        return None
    u = common[-1]
    return va[va["users"] == u].iloc[-1], vb[vb["users"] == u].iloc[-1]


def _capacity_interval(s: Mapping[str, Any], steps: pd.DataFrame) -> tuple[float, float]:
    """Where the limit lies on the step grid: [capacity, next valid step's connections) or beyond."""
    valid = steps[steps["valid"].astype(bool)].sort_values("users")
    users = s.get("capacity_at_slo_users")
    cap = finite(s.get("capacity_at_slo")) or 0.0
    above = valid[valid["users"] > users] if users is not None else valid
    if s.get("capacity_is_lower_bound") or above.empty:
        return cap, math.inf
    return cap, float(above["connections"].iloc[0])


def _row(transport: str, figure: str, unit: str, a: Any, b: Any, diff: float | None,
         ci: Sequence[float] | None, overlap: bool | None, how: str) -> dict[str, Any]:
    """One comparison row; the verdict follows the CI (or the intervals' overlap)."""
    if diff is None:
        verdict = "not comparable"
    elif overlap is not None:
        verdict = "within noise" if overlap else ("higher" if diff > 0 else "lower")
    elif ci is None:
        verdict = "noise unknown"
    else:
        verdict = "within noise" if ci[0] <= 0 <= ci[1] else ("higher" if diff > 0 else "lower")
    return {"transport": transport, "figure": figure, "unit": unit, "a": a, "b": b, "difference": diff,
            "difference_ci95": None if ci is None else list(ci), "verdict": verdict, "how": how}


def _slope_rows(t: str, pa: Mapping[str, Any], pb: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Memory, CPU and bytes per unit: estimates with standard errors."""
    rows = []
    for key, figure, unit, v, how in (
            ("memory", "memory per connection", "bytes", "slope", "RSS fit slope, 95% CI of the difference"),
            ("cpu", f"CPU per {pa['unit_words']}", "core-seconds", "per_unit",
             "CPU fit slope, 95% CI of the difference"),
            ("bandwidth", f"bytes per {'event' if pa['unit'] == 'message' else 'request'}", "bytes", "per_unit",
             "pooled over valid steps; standard error from the per-step scatter")):
        ma, mb = pa[key], pb[key]
        if "why" in ma or "why" in mb:
            rows.append(_row(t, figure, unit, None, None, None, None, None, "; ".join(
                m["why"] for m in (ma, mb) if "why" in m)))
            continue
        dfs = [len(m["steps"]) - (2 if key != "bandwidth" else 1) for m in (ma, mb)]
        ea, eb = (_est(m[v], m.get("stderr"), d) for m, d in zip((ma, mb), dfs))
        diff, ci = welch(ea, eb)  # type: ignore[arg-type]
        rows.append(_row(t, figure, unit, ea, eb, diff, ci, None, how))
    return rows


def compare_pair(a: Any, b: Any, params_a: Mapping[str, Any], params_b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows comparing run `b` against run `a` (Run objects) for every transport both have."""
    rows: list[dict[str, Any]] = []
    sa, sb = a.summary["transports"], b.summary["transports"]
    for t in (t for t in sa if t in sb and t in params_a and t in params_b):
        steps_a, steps_b = (r.steps[r.steps["transport"] == t] for r in (a, b))
        slopes = _slope_rows(t, params_a[t], params_b[t])
        rows.append(slopes[0])
        pair = _common_step(steps_a, steps_b)
        push = params_a[t]["kind"] == "push"
        if pair is None:
            rows.append(_row(t, "delivery p99", "ms", None, None, None, None, None, "no load both runs drove"))
        else:
            ia, ib = p99_interval(pair[0], push), p99_interval(pair[1], push)
            at = f"at {fmt_num(pair[0]['users'])} users"
            ea = {"value": finite(pair[0]["latency_p99_ms"]), "lo": ia and ia[0], "hi": ia and ia[1],
                  "connections": finite(pair[0]["connections"]), "users": finite(pair[0]["users"])}
            eb = {"value": finite(pair[1]["latency_p99_ms"]), "lo": ib and ib[0], "hi": ib and ib[1],
                  "connections": finite(pair[1]["connections"]), "users": finite(pair[1]["users"])}
            ok = None not in (ia, ib, ea["value"], eb["value"])
            overlap = ia[0] <= ib[1] and ib[0] <= ia[1] if ok else None  # type: ignore[index]
            rows.append(_row(t, f"delivery p99 {at}", "ms", ea, eb,
                             eb["value"] - ea["value"] if ok else None, None, overlap,
                             "95% interval from the order statistics of each step's events"))
        ca, cb = _capacity_interval(sa[t], steps_a), _capacity_interval(sb[t], steps_b)
        vals = [_capacity(s[t]) for s in (sa, sb)]
        ea = None if vals[0] is None else {"value": vals[0], "lo": ca[0], "hi": inf_to_none(ca[1])}
        eb = None if vals[1] is None else {"value": vals[1], "lo": cb[0], "hi": inf_to_none(cb[1])}
        overlap = ca[0] < cb[1] and cb[0] < ca[1] or ca == cb
        diff = None if None in vals else vals[1] - vals[0]  # type: ignore[operator]
        row = _row(t, "capacity at SLO", "connections", ea, eb, diff, None, overlap if diff is not None else None,
                   "the step grid: the limit lies between the capacity step and the next valid step")
        if row["verdict"] == "within noise" and diff and math.inf in (ca[1], cb[1]):
            # A sweep that stopped while the SLO still held only bounds the limit from below.
            row["verdict"] = "inconclusive: a lower bound"
        rows.append(row)
        rows += [slopes[2], slopes[1]]
    return rows


def _capacity(s: Mapping[str, Any]) -> float | None:
    """Capacity at SLO in connections; 0 when valid steps exist and none met the SLO."""
    cap = finite(s.get("capacity_at_slo"))
    if cap is None and s.get("capacity_at_slo_users") is None and s.get("valid_steps"):
        return 0.0
    return cap


def compare_runs(runs: Sequence[Any], params: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The first run against each other run; `params` maps run name -> run_params(run)."""
    base = runs[0]
    return [{"run_a": base.name, "run_b": other.name, **row}
            for other in runs[1:] for row in compare_pair(base, other, params[base.name], params[other.name])]


FORMATS = {"bytes": lambda v: fmt_bytes(v), "core-seconds": fmt_cpu, "ms": lambda v: f"{fmt_num(v, 1)} ms",
           "connections": lambda v: fmt_num(v)}


def fmt_value(unit: str, figure: str, v: Any) -> str:
    """A value with its unit."""
    return "–" if v is None else FORMATS[unit](v)


def fmt_estimate(row: Mapping[str, Any], key: str) -> str:
    """'20.0 KiB (19.9 KiB to 20.1 KiB)', '1,600 (1,600 to ∞)', or the value alone when the range is it."""
    e = row[key]
    if e is None:
        return "–"
    def f(v: Any) -> str:
        return fmt_value(row["unit"], row["figure"], v)
    lo, mid = f(e.get("lo")), f(e["value"])
    hi = "∞" if e.get("hi") is None and e.get("lo") is not None else f(e.get("hi"))
    return mid if lo == mid == hi or e.get("lo") is None else f"{mid} ({lo} to {hi})"


def fmt_difference(row: Mapping[str, Any]) -> str:
    """'+2.0 KiB (95% CI +1.9 to +2.1), +10.0%'."""
    d = row["difference"]
    if d is None:
        return "–"
    def f(v: float) -> str:
        return ("+" if v > 0 else "") + fmt_value(row["unit"], row["figure"], v)
    out = f(d)
    if row["difference_ci95"] and {f(x) for x in row["difference_ci95"]} != {out}:
        lo, hi = row["difference_ci95"]
        out += f" (95% CI {f(lo)} to {f(hi)})"
    base = row["a"]["value"] if row["a"] else None
    if base:
        out += f", {d / base * 100:+.1f}%"
    return out


def comparison_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The comparison formatted for people: one row per (other run, transport, figure)."""
    several = len({r["run_b"] for r in rows}) > 1
    a = f"{rows[0]['run_a']} (95% range)" if rows else "first run"
    b = "other run (95% range)" if several or not rows else f"{rows[0]['run_b']} (95% range)"
    out = [{**({"runs": f"{r['run_b']} vs {r['run_a']}"} if several else {}),
            "transport": transport_name(r["transport"]),
            "figure": r["figure"], a: fmt_estimate(r, "a"), b: fmt_estimate(r, "b"),
            "difference": fmt_difference(r), "verdict": r["verdict"]} for r in rows]
    return pd.DataFrame(out, columns=[*(["runs"] if several else []), "transport", "figure", a, b,
                                      "difference", "verdict"])
