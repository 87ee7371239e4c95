"""Pass/fail thresholds in the style of k6: `sse.delivery.p99<250ms`, `ws.errors<0.1%`, `poll.rps>=500`.

An expression is `TRANSPORT.METRIC OP VALUE[UNIT]`. Parsing is strict and happens before any run starts, so
a typo is reported with a caret under the mistake, not discovered after ten minutes of load. Evaluation
reads a run directory's figures (summary.json per transport, steps.csv for per-step worst cases); pure.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from rtcap.reports.flags import GENERATOR_FLAGS, TARGET_FLAGS, UNMEASURED_FLAGS, reasons, split_flags
from rtcap.reports.units import finite, fmt_bytes

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt, ">": operator.gt,
}
TIME_UNITS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0}
BYTE_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


@dataclass(frozen=True)
class Metric:
    """What a metric name means: its kind of unit and how to read it from a run."""

    kind: str  # "time" (ms), "bytes", "rate" (a fraction, or a count without %), "number"
    describe: str


METRICS: dict[str, Metric] = {
    "delivery.p50": Metric("time", "worst delivery p50 over the valid steps"),
    "delivery.p95": Metric("time", "worst delivery p95 over the valid steps"),
    "delivery.p99": Metric("time", "worst delivery p99 over the valid steps"),
    "delivery.max": Metric("time", "worst delivery max over the valid steps"),
    "errors": Metric("rate", "errors: a count, or with % the worst step's error rate"),
    "lost": Metric("rate", "lost events: a count, or with % a share of the events delivered"),
    "duplicated": Metric("rate", "duplicated events: a count, or with % a share of the events delivered"),
    "reordered": Metric("rate", "reordered events: a count, or with % a share of the events delivered"),
    "mem_per_conn": Metric("bytes", "memory per connection (fitted RSS slope)"),
    "bytes_per_event": Metric("bytes", "wire bytes per delivered event"),
    "rps": Metric("number", "requests/s at the most connections held"),
    "msgs_per_s": Metric("number", "messages/s delivered at the most connections held"),
    "connections": Metric("number", "most connections held"),
    "capacity": Metric("number", "capacity at the SLO (connections)"),
}
_EXPRESSION = re.compile(r"^\s*(?P<transport>[A-Za-z0-9_-]+)\.(?P<metric>[A-Za-z0-9_.]+?)\s*"
                         r"(?P<op><=|>=|==|<|>)\s*(?P<value>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*"
                         r"(?P<unit>[A-Za-zµ%]*)\s*$")


class ThresholdError(ValueError):
    """A threshold expression that cannot be understood; the message points at the mistake."""


@dataclass(frozen=True)
class Threshold:
    """One parsed expression; `limit` is in the metric's base unit (ms, bytes, a fraction, or a count)."""

    text: str
    transport: str
    metric: str
    op: str
    limit: float
    percent: bool = False


@dataclass(frozen=True)
class Outcome:
    """A threshold checked against a run: the observed value (base unit), whether it held, and why."""

    threshold: Threshold
    observed: float | None
    ok: bool
    detail: str


def _point(text: str, start: int, message: str) -> ThresholdError:
    return ThresholdError(f"{message}\n  {text}\n  {' ' * start}^")


def parse_threshold(text: str) -> Threshold:
    """Parse one expression such as `sse.delivery.p99<250ms`; raise ThresholdError saying what is wrong."""
    match = _EXPRESSION.match(text)
    if match is None:
        at = next((i for i, c in enumerate(text) if c in "<>="), len(text))
        if at == len(text):
            raise _point(text, len(text), "bad threshold: no comparison (use <, <=, >, >= or ==), e.g. "
                                          "'sse.delivery.p99<250ms'")
        if "." not in text[:at]:
            raise _point(text, 0, "bad threshold: name a transport and a metric, e.g. 'ws.errors<0.1%'")
        raise _point(text, at + 1, "bad threshold: expected a number after the comparison")
    metric = match["metric"]
    if metric not in METRICS:
        known = ", ".join(METRICS)
        raise _point(text, match.start("metric"), f"bad threshold: unknown metric {metric!r}; known: {known}")
    kind, unit, value = METRICS[metric].kind, match["unit"], float(match["value"])
    limit, percent = _in_base_unit(text, match.start("unit"), kind, unit, value)
    return Threshold(text.strip(), match["transport"], metric, match["op"], limit, percent)


def _in_base_unit(text: str, at: int, kind: str, unit: str, value: float) -> tuple[float, bool]:
    lowered = unit.lower()
    if kind == "time":
        if lowered not in TIME_UNITS:
            raise _point(text, at, f"bad threshold: a latency needs a time unit (us, ms, s), got {unit or 'none'!r}")
        return value * TIME_UNITS[lowered], False
    if kind == "bytes":
        if lowered not in BYTE_UNITS:
            raise _point(text, at, f"bad threshold: a size needs a unit (B, KiB, MiB, GiB), got {unit or 'none'!r}")
        return value * BYTE_UNITS[lowered], False
    if kind == "rate" and unit == "%":
        return value / 100.0, True
    if unit:
        raise _point(text, at, f"bad threshold: this metric takes a plain number{' or %' if kind == 'rate' else ''}, "
                               f"got unit {unit!r}")
    return value, False


def parse_thresholds(texts: Iterable[str]) -> list[Threshold]:
    """Parse every expression; report all the bad ones together."""
    parsed, problems = [], []
    for text in texts:
        try:
            parsed.append(parse_threshold(text))
        except ThresholdError as error:
            problems.append(str(error))
    if problems:
        raise ThresholdError("\n".join(problems))
    return parsed


def _judged_steps(steps: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the steps a gate judges, those of them that did not measure the target): the valid steps plus the
    steps invalid through the target's fault alone."""
    if not len(steps):
        return steps, steps
    tags = steps.get("flags", pd.Series("", index=steps.index)).map(lambda cell: set(split_flags(cell)))
    target_fault = tags.map(lambda t: bool(t & TARGET_FLAGS) and not t & GENERATOR_FLAGS)
    judged = steps[steps["valid"].astype(bool) | target_fault]
    return judged, judged[tags[judged.index].map(lambda t: bool(t & UNMEASURED_FLAGS))]


def observe(threshold: Threshold, figures: Mapping[str, Any], steps: pd.DataFrame) -> tuple[float | None, str]:
    """The value a threshold compares, from one transport's summary figures and its steps; (None, why)."""
    metric = threshold.metric
    # Every step that ran is judged, except those that measured the load generator instead of the target
    # (saturated, lagging, out of fds...). A step where the target died, froze or delivered nothing is
    # judged too, and it has no figure to pass with: a gate never passes on missing data.
    judged, unmeasured = _judged_steps(steps)
    if metric.startswith("delivery.") or (metric == "errors" and threshold.percent):
        if len(unmeasured):
            first = unmeasured.iloc[0]
            return None, (f"step {int(first['step'])} ({int(first['users'])} users) did not measure the target: "
                          f"{reasons(first['flags'])}")
        column = f"latency_{metric.split('.')[1]}_ms" if metric.startswith("delivery.") else "error_rate"
        values = pd.to_numeric(judged.get(column, pd.Series(dtype=float)), errors="coerce")
        if len(values) and values.isna().any() and metric.startswith("delivery."):
            first = judged[values.isna()].iloc[0]
            return None, f"step {int(first['step'])} ({int(first['users'])} users) measured no delivery latency"
        values = values.dropna()
        return (float(values.max()), "") if len(values) else (None, "no step measured the target")
    if metric in ("lost", "duplicated", "reordered") and threshold.percent:
        delivered = pd.to_numeric(steps.get("delivered", pd.Series(dtype=float)), errors="coerce").sum()
        count = finite(figures.get(metric))
        if count is None or not delivered:
            return None, "no events delivered"
        return count / delivered, ""
    key = {"mem_per_conn": "mem_per_conn_bytes", "connections": "max_connections",
           "capacity": "capacity_at_slo"}.get(metric, metric)
    value = finite(figures.get(key))
    return (value, "") if value is not None else (None, f"{key} unavailable in this run")


def evaluate(thresholds: Iterable[Threshold], summary: Mapping[str, Any], steps: pd.DataFrame) -> list[Outcome]:
    """Check each threshold against a run's summary (summary.json) and steps (steps.csv)."""
    outcomes = []
    transports = summary.get("transports", {})
    for threshold in thresholds:
        if threshold.transport not in transports:
            outcomes.append(Outcome(threshold, None, False, f"the run measured no {threshold.transport!r} "
                                                            f"(it has {', '.join(transports) or 'none'})"))
            continue
        rows = steps[steps["transport"] == threshold.transport] if len(steps) else steps
        observed, why = observe(threshold, transports[threshold.transport], rows)
        if observed is None:
            outcomes.append(Outcome(threshold, None, False, why))
            continue
        ok = OPERATORS[threshold.op](observed, threshold.limit)
        outcomes.append(Outcome(threshold, observed, ok, METRICS[threshold.metric].describe))
    return outcomes


COUNTS = ("errors", "lost", "duplicated", "reordered")
PER_STEP = ("delivery.p50", "delivery.p95", "delivery.p99", "delivery.max")


def show_value(metric: str, value: float | None, percent: bool = False) -> str:
    """An observed or limit value in its metric's unit, for people: "412 ms", "33.1 KiB", "0.25%", "3"."""
    if value is None:
        return "unavailable"
    kind = METRICS[metric].kind if metric in METRICS else "number"
    if kind == "time":
        return f"{value:.4g} ms"
    if kind == "bytes":
        return fmt_bytes(value)
    if kind == "rate" and percent:
        return f"{value * 100:.3g}%"
    return f"{value:.6g}"


def final_once_missed(threshold: Threshold, per_step: bool) -> bool:
    """True if a miss seen on finished data can never be undone by more of the run (for abort-early).

    Counts only grow, so an upper bound on a count stays missed. With per-step figures (a staircase), the
    worst finished step's latency or error rate stays the worst; over one growing window it can still fall.
    Lower bounds, ratios of counts and fitted figures (memory per connection, capacity) can recover.
    """
    if threshold.op not in ("<", "<="):
        return False
    if threshold.metric in COUNTS and not threshold.percent:
        return True
    return per_step and (threshold.metric in PER_STEP or (threshold.metric == "errors" and threshold.percent))


def doomed(thresholds: Iterable[Threshold], summary: Mapping[str, Any], steps: pd.DataFrame,
           per_step: bool) -> list[Outcome]:
    """The thresholds already missed on finished data in a way no later data can mend."""
    candidates = [t for t in thresholds if final_once_missed(t, per_step)]
    present = summary.get("transports", {})
    return [o for o in evaluate([t for t in candidates if t.transport in present], summary, steps)
            if not o.ok and o.observed is not None]
