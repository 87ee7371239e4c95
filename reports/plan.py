"""Capacity plan: how many server instances N viewers need, per transport, from one run's fitted model.

Inputs: V viewers, u updates per second per viewer, freshness f seconds, M bytes of memory and C cores
per instance, headroom h (the share of each instance's memory and CPU kept free). An instance is one
server process as measured in the run. Per transport the run gives (see `transport_model`):

- memory: RSS = b + s * connections (summary.json: baseline_rss_bytes, mem_per_conn_bytes, and
  mem_per_conn_ci95 for s_lo..s_hi);
- CPU: cores = i + k * work/s, a least-squares fit of the target's cpu_percent / 100 over the valid
  steps against delivered messages/s (push) or HTTP requests/s (polling); i is the idle intercept
  (clamped at 0), k the core-seconds one message or request costs, with its 95% CI k_lo..k_hi;
- connections at SLO: the most connections held at a valid step with error rate within the run's
  SLO and delivery p99 <= f (push, long polling) or <= the run's SLO p99 (interval polling, whose
  measured staleness depends on the run's own poll interval);
- wire bytes per message (push) or per request (polling): sum(bytes_received + bytes_sent) /
  sum(delivered or requests) over valid steps; the range is the per-step min..max;
- connections per viewer: the median of connections / users over valid steps, rounded (1 for most
  transports, 2 for signalling's WebSocket plus HTTP keep-alive); the memory slope and the connections at SLO
  are turned into per-viewer figures with it, since the plan counts viewers.

The plan:

    w  = u (push, long polling: one message or request per update) or 1/f (interval polling)
    W  = V * w                                   planned messages/s or requests/s
    viewers per instance, each floored:
      memory       (M * (1 - h) - b) / s         s = max(0, slope); unbounded when s = 0
      CPU          (C * (1 - h) - i) / (k * w)   k = max(0, per-unit CPU)
      connections  connections at SLO           as measured, never extrapolated
    instances by resource = ceil(V / viewers per instance) (at least 1); 0 viewers per instance
      means the transport cannot be planned on such an instance
    instances = max over resources; the resource(s) reaching it bind. When the connections at SLO are a
      lower bound (the SLO held at every step measured, so no limit was found), they are left out of the
      max: the plan extrapolates the memory and CPU fits, and `instances_within_measured` (the max with
      them) says how many instances keep each one within the connections the run measured
    memory = n * b + s * V    CPU = n * i + k * W    bandwidth = W * bytes per unit

Low / expected / high use s_lo, k_lo, the lowest per-step bytes / s, k, pooled bytes / s_hi, k_hi,
the highest per-step bytes: the 95% CIs of the fits carried through. The connection limit has no CI.

planner_html.py implements `plan_transport` and the unit parsers again in JavaScript over the same
model dicts; tests/reports/test_planner_browser.py checks both give the same numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from rtcap.reports.schema import META_FILE
from rtcap.reports import model as fits
from rtcap.reports.deployment import plan_broker, run_rate, step_shares, transport_deployment
from rtcap.reports.rundir import Run
from rtcap.reports.summary import build_summary
from rtcap.reports.units import finite, inf_to_none, throughput_kind
from rtcap.targets.transports import get

RESOURCES = ("memory", "cpu", "connections")
RESOURCE_WORDS = {"memory": "memory", "cpu": "CPU", "connections": "connections at SLO", "broker": "broker"}
MONTH_S = 30 * 86400
DEFAULT_HEADROOM = 0.2
# Mirrored by planner_html.py's JavaScript: keep the two grammars identical.
NUMBER = r"([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)"
RATE_UNITS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hr": 3600, "hour": 3600}
# (multiplier, divisor) so that "500ms" is 500 / 1000 exactly as in JavaScript.
DURATION_UNITS = {"ms": (1, 1000), "s": (1, 1), "sec": (1, 1), "second": (1, 1), "m": (60, 1),
                  "min": (60, 1), "minute": (60, 1), "h": (3600, 1), "hr": (3600, 1), "hour": (3600, 1)}
# K/M/G/T and Ki/KiB... are binary, as in `free -h`, Docker and JVM flags; kB/MB/GB/TB are decimal.
SIZE_UNITS = {"": 1, "b": 1, **{p: 1024 ** (i + 1) for i, p in enumerate("kmgt")},
              **{p + "i": 1024 ** (i + 1) for i, p in enumerate("kmgt")},
              **{p + "ib": 1024 ** (i + 1) for i, p in enumerate("kmgt")},
              **{p + "b": 1000 ** (i + 1) for i, p in enumerate("kmgt")}}
COUNT_UNITS = {"": 1, "k": 1000, "m": 1000000}


class PlanInputError(ValueError):
    """An input of the plan cannot be read or is out of range."""


def _split(text: str, what: str, example: str) -> tuple[float, str]:
    """Split '4 GiB' into (4.0, 'gib'), raising PlanInputError with an example when malformed."""
    m = re.fullmatch(NUMBER + r"([a-z/%]*)", re.sub(r"[\s_]", "", str(text)).lower())
    if not m:
        raise PlanInputError(f"cannot read {text!r} as {what}; use e.g. {example}")
    return float(m.group(1)), m.group(2)


def _unit(unit: str, table: Mapping[str, Any]) -> str | None:
    """`unit` if the table has it, or its singular ('mins' -> 'min'), else None."""
    if unit in table:
        return unit
    return unit[:-1] if unit.endswith("s") and unit[:-1] in table else None


def _round(x: float) -> float:
    """Round half up, as JavaScript's Math.round (Python's round() goes half to even)."""
    return float(math.floor(x + 0.5))


def parse_rate(text: str) -> float:
    """Updates per second from '1/s', '10/min', '2/h' or a bare number (per second)."""
    example = "1/s, 10/min, 0.5"
    value, unit = _split(text, "an update rate", example)
    unit = _unit(unit[1:] if unit.startswith("/") else ("s" if unit == "" else "?"), RATE_UNITS)
    if unit is None or value <= 0:
        raise PlanInputError(f"cannot read {text!r} as an update rate above 0; use e.g. {example}")
    return value / RATE_UNITS[unit]


def parse_duration(text: str) -> float:
    """Seconds from '1s', '500ms', '2min', '1h' or a bare number (seconds)."""
    example = "1s, 500ms, 10s"
    value, unit = _split(text, "a duration", example)
    unit = _unit("s" if unit == "" else unit, DURATION_UNITS)
    if unit is None or value <= 0:
        raise PlanInputError(f"cannot read {text!r} as a duration above 0; use e.g. {example}")
    mul, div = DURATION_UNITS[unit]
    return value * mul / div


def parse_size(text: str) -> float:
    """Bytes from '4GiB', '512MiB', '4G' (binary), '4GB' (decimal) or a bare number of bytes."""
    example = "4GiB, 512MiB, 4G"
    value, unit = _split(text, "a memory size", example)
    if unit not in SIZE_UNITS or value <= 0:
        raise PlanInputError(f"cannot read {text!r} as a memory size above 0; use e.g. {example}")
    return value * SIZE_UNITS[unit]


def parse_count(text: str) -> float:
    """A whole number of viewers from '100000', '100k', '1.5M' or '100,000'."""
    example = "100000, 100k, 1.5M"
    value, unit = _split(str(text).replace(",", ""), "a number of viewers", example)
    if unit not in COUNT_UNITS or _round(value * COUNT_UNITS[unit]) < 1:
        raise PlanInputError(f"cannot read {text!r} as a number of viewers (at least 1); use e.g. {example}")
    return _round(value * COUNT_UNITS[unit])


def parse_headroom(text: str) -> float:
    """A fraction in [0, 1) from '20%' or '0.2'."""
    value, unit = _split(text, "a headroom", "20% or 0.2")
    value = value / 100 if unit == "%" else value
    if unit not in ("", "%") or not 0 <= value < 1:
        raise PlanInputError(f"cannot read {text!r} as a headroom from 0 to below 1; use e.g. 20% or 0.2")
    return value


def parse_cores(text: str) -> float:
    """Cores per instance: a number above 0 ('1', '2', '0.5')."""
    value, unit = _split(text, "a number of cores", "1, 2, 0.5")
    if unit not in ("", "core", "cores") or value <= 0:
        raise PlanInputError(f"cannot read {text!r} as a number of cores above 0; use e.g. 1, 2, 0.5")
    return value


@dataclass(frozen=True)
class PlanInputs:
    """What to plan for: viewers, update rate (/s), freshness (s), and one instance's size."""

    viewers: float
    update_rate: float
    freshness_s: float
    instance_memory: float
    instance_cores: float = 1.0
    headroom: float = DEFAULT_HEADROOM

    def __post_init__(self) -> None:
        """Reject inputs no plan can be made for (the parsers already refuse them)."""
        positive = ("viewers", "update_rate", "freshness_s", "instance_memory", "instance_cores")
        bad = [k for k in positive if not getattr(self, k) > 0] + (
            [] if 0 <= self.headroom < 1 else ["headroom"])
        if bad:
            raise PlanInputError(f"out of range: {', '.join(bad)}")

    def as_dict(self) -> dict[str, float]:
        """The inputs as a JSON-ready dict."""
        return asdict(self)


def _why_unmeasured(valid: pd.DataFrame, column: str, what: str, x: str) -> str:
    """Why a fit of `column` over valid steps failed, in plain words."""
    if len(valid) == 0:
        return "no valid steps"
    known = valid[column].notna() & valid[x].notna()
    if not known.any():
        return f"target {what} was not sampled (e.g. no process to sample: --host without --target-pid)"
    return (f"{what} fit not possible: {int(valid.loc[known, x].nunique())} distinct value(s) over valid "
            f"steps; need >= {fits.MIN_FIT_POINTS}")


def _memory(summary: Mapping[str, Any], valid: pd.DataFrame) -> dict[str, Any]:
    """The memory model from summary.json, or why it is missing."""
    slope, ci = finite(summary.get("mem_per_conn_bytes")), summary.get("mem_per_conn_ci95") or [None, None]
    base = finite(summary.get("baseline_rss_bytes"))
    lo, hi = finite(ci[0]), finite(ci[1])
    if slope is None or base is None or lo is None or hi is None:
        return {"why": "no memory fit: " + _why_unmeasured(valid, "rss_bytes", "memory", "connections")}
    return {"slope": slope, "slope_lo": lo, "slope_hi": hi, "baseline": base,
            "r2": finite(summary.get("mem_per_conn_r2")), "points": summary.get("fit_points")}


def _cpu(valid: pd.DataFrame, unit: str) -> dict[str, Any]:
    """Fit target cores against messages/s or requests/s over valid steps (the CI carries the scatter)."""
    x = "msgs_per_s" if unit == "message" else "rps"
    try:
        fit = fits.fit_line(valid[x], valid["cpu_percent"] / 100.0)
    except fits.FitError:
        return {"why": "no CPU fit: " + _why_unmeasured(valid, "cpu_percent", "CPU", x)}
    if any(finite(v) is None for v in (fit.slope, fit.ci95[0], fit.ci95[1], fit.intercept)):
        # e.g. the work never changed between steps (a server that publishes by itself): no usable slope.
        return {"why": f"no CPU fit: CPU against {x} gave no finite slope and interval over valid steps"}
    # An idle process cannot use negative CPU; a slightly negative intercept is fit noise.
    return {"per_unit": fit.slope, "per_unit_lo": fit.ci95[0], "per_unit_hi": fit.ci95[1],
            "idle_cores": max(0.0, fit.intercept), "r2": finite(fit.r2), "points": fit.n}


def _bandwidth(valid: pd.DataFrame, unit: str) -> dict[str, Any]:
    """Wire bytes per delivered message (push) or per request (polling) over valid steps."""
    units = valid["delivered"] if unit == "message" else valid["requests"]
    wire = valid["bytes_received"] + valid["bytes_sent"]
    ok = units.gt(0) & wire.notna()
    if not ok.any():
        return {"why": f"no wire bytes per {unit} measured over valid steps"}
    per_step = wire[ok] / units[ok]
    return {"per_unit": float(wire[ok].sum() / units[ok].sum()), "per_unit_lo": float(per_step.min()),
            "per_unit_hi": float(per_step.max()), "steps": int(ok.sum())}


def transport_model(run_name: str, transport: str, steps: pd.DataFrame, summary: Mapping[str, Any],
                    slo: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-ready capacity model of one transport of one run (the planner's only input)."""
    valid = steps[steps["valid"].astype(bool)]
    unit = "request" if throughput_kind(transport, steps) == "poll" else "message"
    # Long polling answers once per update; interval polling once per interval, news or not.
    held_poll = (record := get(transport)) is not None and record.polled and not record.interval
    work = "update" if unit == "message" or held_poll else "freshness"
    err_ok = pd.to_numeric(valid["error_rate"], errors="coerce") <= float(slo["error_rate"])
    rows = valid[err_ok & valid["connections"].notna() & valid["latency_p99_ms"].notna()]
    top = pd.to_numeric(valid["users"], errors="coerce").max()
    per_viewer = connections_per_viewer(valid)
    memory = _memory(summary, valid)
    if per_viewer > 1 and "why" not in memory:
        # The planner counts viewers: a viewer holding two connections (signalling: a WebSocket and an HTTP
        # keep-alive) costs two connections' memory.
        memory = {**memory, **{k: memory[k] * per_viewer for k in ("slope", "slope_lo", "slope_hi")}}
    return {
        "run": run_name, "transport": transport, "unit": unit, "work": work,
        "memory": memory, "cpu": _cpu(valid, unit), "bandwidth": _bandwidth(valid, unit),
        "slo": {"delivery_p99_ms": float(slo["delivery_p99_ms"]), "error_rate": float(slo["error_rate"])},
        "connections_per_viewer": per_viewer,
        # Valid steps within the error SLO: [viewers held (connections / connections per viewer), delivery p99
        # ms, users], by viewers.
        "slo_steps": sorted([int(round(c / per_viewer)), float(p), int(u) if pd.notna(u) else 0] for c, p, u in
                            zip(rows["connections"], rows["latency_p99_ms"], rows["users"])),
        "top_users": None if pd.isna(top) else int(top),
    }


def connections_per_viewer(valid: pd.DataFrame) -> float:
    """Connections each viewer holds: the median of connections / users over valid steps, rounded to a whole
    number (1 unless clearly more, so ordinary runs whose counts differ by a few are left as they are)."""
    ratio = (pd.to_numeric(valid["connections"], errors="coerce") / pd.to_numeric(valid["users"], errors="coerce"))
    ratio = ratio[ratio.notna() & (ratio > 0)]
    return float(max(1, round(float(ratio.median())))) if len(ratio) else 1.0


def run_models(run: Run, transports: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Models of a run's transports (all in summary order, or those named), summary built if absent."""
    summary = run.summary or build_summary(run.meta, run.steps, run.path / META_FILE)
    slo = summary.get("slo") or run.meta.get("slo") or {}
    names = list(summary.get("transports") or {})
    shares = step_shares(run.steps, run.samples, run_rate(run.meta))
    models = []
    for t in transports or names:
        m = transport_model(run.name, t, run.steps[run.steps["transport"] == t], summary["transports"][t], slo)
        deployment = None if shares.empty else transport_deployment(shares, t)
        models.append(m if deployment is None else {**m, "deployment": deployment})
    return models


def _per_instance(budget: float, per_viewer: float) -> float:
    """Viewers one instance holds within `budget`: floored; inf when a viewer costs nothing."""
    if budget <= 0:
        return 0.0
    if per_viewer <= 0:
        return math.inf
    return float(math.floor(budget / per_viewer))


def _instances(viewers: float, per_instance: float) -> int:
    """Instances one resource needs: ceil(V / viewers per instance), at least 1."""
    return 1 if per_instance == math.inf else max(1, math.ceil(viewers / per_instance))


def connections_at_slo(m: Mapping[str, Any], p: PlanInputs) -> tuple[int | None, bool, float]:
    """(most connections within the latency limit or None, whether that is a lower bound, limit ms)."""
    limit = p.freshness_s * 1000 if m["work"] == "update" else m["slo"]["delivery_p99_ms"]
    ok = [s for s in m["slo_steps"] if s[1] <= limit]
    if not ok:
        return None, False, limit
    best = ok[-1]
    return best[0], m["top_users"] is not None and best[2] >= m["top_users"], limit


def plan_transport(m: Mapping[str, Any], p: PlanInputs) -> dict[str, Any]:
    """Plan one transport (formulas in the module docstring); JSON-ready, inf as None."""
    w = p.update_rate if m["work"] == "update" else 1 / p.freshness_s
    work = p.viewers * w
    out: dict[str, Any] = {"run": m["run"], "transport": m["transport"], "unit": m["unit"],
                           "work_per_s": work, "available": False, "why": None}
    conns, lower, limit = connections_at_slo(m, p)
    out.update(connections_lower_bound=lower, latency_limit_ms=limit)
    mem, cpu, bw = m["memory"], m["cpu"], m["bandwidth"]
    missing = [x["why"] for x in (mem, cpu) if "why" in x]
    if conns is None:
        missing.append(f"no valid step had delivery p99 <= {limit:g} ms with error rate <= "
                       f"{m['slo']['error_rate']:g}")
    if missing:
        out["why"] = "; ".join(missing)
        return out
    slopes = [max(0.0, mem[k]) for k in ("slope_lo", "slope", "slope_hi")]
    units = [max(0.0, cpu[k]) for k in ("per_unit_lo", "per_unit", "per_unit_hi")]
    mem_budget = p.instance_memory * (1 - p.headroom) - mem["baseline"]
    cpu_budget = p.instance_cores * (1 - p.headroom) - cpu["idle_cores"]
    per = {"memory": [_per_instance(mem_budget, s) for s in slopes],
           "cpu": [_per_instance(cpu_budget, k * w) for k in units],
           "connections": [float(conns)] * 3}
    if 0.0 in per["memory"] or 0.0 in per["cpu"]:
        which = "memory" if 0.0 in per["memory"] else "CPU"
        out["why"] = (f"one instance cannot hold a single viewer: its {which} after {p.headroom:.0%} "
                      "headroom does not cover the idle baseline and one viewer")
        return out
    by = {r: [_instances(p.viewers, x) for x in per[r]] for r in RESOURCES}
    # A connection count at which the SLO still held is not a limit: planning on it would size production by
    # how far the sweep went. The model's resources decide; the count says how many instances stay measured.
    deciding = ("memory", "cpu") if lower else RESOURCES
    n = [max(by[r][i] for r in deciding) for i in range(3)]
    bytes_per = ([bw["per_unit_lo"], bw["per_unit"], bw["per_unit_hi"]] if "why" not in bw
                 else [None] * 3)
    out.update(
        available=True,
        per_instance={r: [inf_to_none(x) for x in v] for r, v in per.items()},
        instances_by=by, instances=n,
        instances_within_measured=[max(by[r][i] for r in RESOURCES) for i in range(3)],
        binding=[r for r in deciding if by[r][1] == n[1]],
        memory_bytes=[n[i] * mem["baseline"] + slopes[i] * p.viewers for i in range(3)],
        cpu_cores=[n[i] * cpu["idle_cores"] + units[i] * work for i in range(3)],
        bandwidth_bytes_per_s=[None if b is None else work * b for b in bytes_per],
        bandwidth_month_bytes=[None if b is None else work * b * MONTH_S for b in bytes_per],
        bandwidth_why=bw.get("why"),
    )
    if m.get("deployment"):
        out["broker"] = plan_broker(m["deployment"], p, n, work if m["unit"] == "request" else 0.0)
        if out["broker"]["binds"]:
            out["binding"] = [*out["binding"], "broker"]  # more instances do not help: the shared broker limits
    return out


def plan(models: Sequence[Mapping[str, Any]], p: PlanInputs) -> dict[str, Any]:
    """The whole plan: inputs, one entry per model, and the formulas in words."""
    return {"inputs": p.as_dict(), "plans": [plan_transport(m, p) for m in models], "formulas": FORMULAS}


FORMULAS = [
    "an instance is one server process as measured; default 1 core, since one Python process uses one core",
    "work W = viewers x update rate (push, long polling) or viewers / freshness (polling at interval = freshness)",
    "memory: viewers/instance = floor((instance memory x (1 - headroom) - baseline RSS) / memory per connection)",
    ("CPU: viewers/instance = floor((cores x (1 - headroom) - idle cores) / (CPU per message or request x "
     "per-viewer rate)); CPU fitted as cores vs messages/s (push) or requests/s (polling) over valid steps"),
    ("connections at SLO: most connections held at a valid step with delivery p99 <= freshness (push) or <= "
     "the run's SLO p99 (interval polling) and errors within the SLO; never extrapolated beyond what was measured"),
    ("instances = max over resources of ceil(viewers / viewers per instance); that resource binds; connections "
     "at SLO that are only a lower bound (the SLO held at every step) do not bind: the plan then extrapolates "
     "memory and CPU, and 'within measured' gives the instances that keep each within what was measured"),
    "memory = instances x baseline + memory per connection x viewers; CPU = instances x idle + CPU per unit x W",
    "bandwidth = W x wire bytes per message (push) or per request (polling), both directions, over valid steps",
    "low / high: 95% CI bounds of the memory and CPU slopes, lowest / highest per-step bytes per unit",
    ("a deployment (the run sampled workers and a broker): an instance is its N workers plus the broker as measured; "
     "the broker shared by every instance carries update rate x (1 + instances x N) + requests/s (each poll syncs) "
     "messages/s against (1 - headroom) / broker CPU per message on its one thread; past that the broker binds"),
]
