"""Per-transport model parameters of one run, each with its uncertainty and the steps it came from.

The values are exactly the capacity planner's (reports/plan.py `run_models`: memory fit from
summary.json, CPU per message or request, wire bytes per message or request); this module adds what
sentences, comparisons and exports need on top: standard errors, the steps behind each figure, the
payload/overhead split of polling bytes, the run's poll interval and update rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from rtcap.reports.schema import META_FILE
from rtcap.reports import model as fits
from rtcap.reports.plan import run_models
from rtcap.reports.rundir import Run
from rtcap.reports.summary import build_summary
from rtcap.reports.units import finite, transport_name
from rtcap.targets.transports import get, where

ONE_STREAM_FEED = where(lambda t: t.kind == "held stream" and t.feed and t.connections_per_user == 1)
"""Each connection receives every published event once: messages/s per connection is the update rate."""
UNIT_WORDS = {"message": ("delivered event", "messages/s", "msgs_per_s", "delivered"),
              "request": ("request", "requests/s", "rps", "requests")}


def se_from_ci(ci: Sequence[Any] | None, n: Any) -> float | None:
    """The standard error behind a slope's 95% CI (half-width / t(0.975, n - 2)); None if unknown."""
    lo, hi, points = (finite(ci[0]), finite(ci[1]), finite(n)) if ci else (None, None, None)
    if lo is None or hi is None or points is None or points <= 2:
        return None
    return (hi - lo) / 2 / fits.t95(points - 2)


def step_list(steps: Sequence[Any]) -> str:
    """Step indices in words: 'step 3', 'steps 0-5' (contiguous) or 'steps 0, 1, 3'."""
    ks = sorted({int(k) for k in steps})
    if not ks:
        return "no steps"
    if len(ks) == 1:
        return f"step {ks[0]}"
    if ks == list(range(ks[0], ks[-1] + 1)):
        return f"steps {ks[0]}-{ks[-1]}"
    return "steps " + ", ".join(map(str, ks))


def _steps_of(rows: pd.DataFrame, *columns: str) -> list[int]:
    """Step indices of the rows where every column is known."""
    known = pd.Series(True, index=rows.index)
    for c in columns:
        known &= pd.to_numeric(rows[c], errors="coerce").notna()
    return [int(s) for s in rows.loc[known, "step"]]


def _delta_polled(transport: str) -> bool:
    return (record := get(transport)) is not None and record.delta_polled


def _bytes_split(valid: pd.DataFrame, unit: str) -> dict[str, Any] | None:
    """Polling wire bytes as overhead per request plus payload per event, when payload was counted."""
    if unit != "request":
        return None
    wire = valid["bytes_received"] + valid["bytes_sent"]
    payload = pd.to_numeric(valid["payload_bytes"], errors="coerce")
    ok = valid["requests"].gt(0) & valid["delivered"].gt(0) & wire.notna() & payload.gt(0)
    if not ok.any():
        return None
    rows, w, p = valid[ok], wire[ok], payload[ok]
    return {"overhead_per_request": float((w - p).sum() / rows["requests"].sum()),
            "payload_per_event": float(p.sum() / rows["delivered"].sum()),
            # Per step, so a break-even can carry the step-to-step spread.
            "per_step": [[float((wi - pi) / r), float(pi / d)] for wi, pi, r, d in
                         zip(w, p, rows["requests"], rows["delivered"])]}


def transport_params(m: Mapping[str, Any], steps: pd.DataFrame) -> dict[str, Any]:
    """Augment one planner model with standard errors, the steps used, and the bytes split."""
    valid = steps[steps["valid"].astype(bool)]
    what, rate_word, x, count = UNIT_WORDS[m["unit"]]
    mem, cpu, bw = dict(m["memory"]), dict(m["cpu"]), dict(m["bandwidth"])
    if "why" not in mem:
        sel = fits.select_fit_steps(steps, "rss_bytes").rows
        mem.update(stderr=se_from_ci([mem["slope_lo"], mem["slope_hi"]], mem.get("points")),
                   steps=_steps_of(sel, "connections", "rss_bytes"))
    if "why" not in cpu:
        cpu.update(stderr=se_from_ci([cpu["per_unit_lo"], cpu["per_unit_hi"]], cpu.get("points")),
                   steps=_steps_of(valid, x, "cpu_percent"), x=rate_word)
    if "why" not in bw:
        units = valid[count]
        wire = valid["bytes_received"] + valid["bytes_sent"]
        ok = units.gt(0) & wire.notna()
        per_step = (wire[ok] / units[ok]).astype(float)
        n = len(per_step)
        bw.update(per_step=per_step.tolist(), steps=[int(s) for s in valid.loc[ok, "step"]],
                  stderr=float(per_step.std(ddof=1) / math.sqrt(n)) if n > 1 else None)
    return {"run": m["run"], "transport": m["transport"], "name": transport_name(m["transport"]),
            "kind": "polling" if m["work"] == "freshness" else "push", "unit": m["unit"],
            "unit_words": what, "memory": mem, "cpu": cpu, "bandwidth": bw,
            # Only a delta poll's body grows with the updates; full-state polling sends the state every time.
            "bytes_split": _bytes_split(valid, m["unit"]) if _delta_polled(m["transport"]) else None,
            "model": dict(m)}


def run_params(run: Run) -> dict[str, dict[str, Any]]:
    """Parameters of every transport of a run, keyed by transport, in summary order."""
    if run.summary is None:
        run.summary = build_summary(run.meta, run.steps, run.path / META_FILE)
    return {m["transport"]: transport_params(m, run.steps[run.steps["transport"] == m["transport"]])
            for m in run_models(run)}


def poll_interval(run: Run) -> tuple[float | None, str]:
    """The run's poll interval in seconds and where it came from (meta.json, else the steps)."""
    opt = finite((run.meta.get("options") or {}).get("poll_interval"))
    if opt is not None and opt > 0:
        return opt, "meta.json options.poll_interval"
    interval_polled = where(lambda t: t.interval)  # once per interval, news or not
    polls = run.steps[run.steps["valid"].astype(bool) & run.steps["transport"].isin(interval_polled)]
    ok = polls["rps"].gt(0) & polls["users"].gt(0)
    if not ok.any():
        return None, "no poll interval: no valid polling step with requests"
    # One viewer polls once per interval, so users / requests per second is the interval.
    value = float((polls.loc[ok, "users"] / polls.loc[ok, "rps"]).median())
    return value, "inferred from steps.csv: median of users / requests per second over valid polling steps"


def update_rate(run: Run) -> tuple[float | None, str]:
    """Events published per second in the run (meta.json target.rate, else delivered per connection)."""
    rate = finite((run.meta.get("target") or {}).get("rate"))
    if rate is not None and rate > 0:
        return rate, "meta.json target.rate"
    push = run.steps[run.steps["valid"].astype(bool) & run.steps["transport"].isin(ONE_STREAM_FEED)]
    ok = push["msgs_per_s"].gt(0) & push["connections"].gt(0)
    if not ok.any():
        return None, "no update rate: meta.json has no target.rate and no valid push step delivered events"
    value = float((push.loc[ok, "msgs_per_s"] / push.loc[ok, "connections"]).median())
    return value, "inferred from steps.csv: median of messages/s per connection over valid push steps"


def feed_transports(params: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(polling, push) transports that serve a feed, in report order."""
    # Transports that compete for the same job: a feed many viewers watch (chat and presence clients also
    # send, request/response clients ask for their own answers). A transport rtcap does not know counts as one.
    names = [t for t in params if (record := get(t)) is None or record.feed]
    return ([t for t in names if params[t]["kind"] == "polling"],
            [t for t in names if params[t]["kind"] == "push"])
