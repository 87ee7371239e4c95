"""Connections vs requests: for the same viewers and freshness, what polling costs against holding push
connections, and the update rate at which the two cost the same (from one run's measured model).

With V viewers, poll interval X (= the freshness polling gives), u updates per second:

    polling   requests/s = V / X          CPU = V / X * k_req          memory = V * s_poll
              wire bytes/s = V / X * b_req  (full-state polling: the whole state on every request)
                           = V / X * o_req + V * u * p_evt  (delta polling, when payload was counted:
                             overhead per request plus the events' payload, which grows with u)
    push      messages/s = V * u          CPU = V * u * k_msg          memory = V * s_push
              wire bytes/s = V * u * b_msg

Polling's cost barely moves with u, push's grows with it, so push is cheaper while updates arrive less
than n* times per poll interval: n*_cpu = k_req / k_msg; n*_bytes = b_req / b_msg, or o_req / (b_msg -
p_evt) for delta polling (push is cheaper at any rate when b_msg <= p_evt). Memory does not depend on u:
the difference is stated, not solved. Idle CPU and the idle footprint are left out: one process pays
them whichever transport it serves. Ranges: the 95% CIs of the CPU fits; per-step bytes for the bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rtcap.reports.figures import HEIGHT, transport_color
from rtcap.reports.params import feed_transports
from rtcap.reports.units import finite, fmt_ratio, fmt_seconds, fmt_update_rate

INF = math.inf


def _div(a: float | None, b: float | None) -> float | None:
    """a / b for a cost ratio: inf when b <= 0 < a (push costs nothing), 0 when a <= 0."""
    if a is None or b is None:
        return None
    if a <= 0:
        return 0.0
    return INF if b <= 0 else a / b


def costs(p: Mapping[str, Any], viewers: float, interval: float, rate: float) -> dict[str, Any]:
    """Marginal CPU (cores), memory (bytes) and wire bytes/s of `viewers` at update rate `rate`."""
    polling = p["kind"] == "polling"
    work = viewers / interval if polling else viewers * rate
    cpu, mem, bw, split = p["cpu"], p["memory"], p["bandwidth"], p.get("bytes_split")
    if split and polling:
        wire = work * split["overhead_per_request"] + viewers * rate * split["payload_per_event"]
    else:
        wire = None if "why" in bw else work * bw["per_unit"]
    return {"transport": p["transport"], "name": p["name"], "kind": p["kind"], "unit": p["unit"],
            "work_per_s": work, "cpu_cores": None if "why" in cpu else work * max(0.0, cpu["per_unit"]),
            "memory_bytes": None if "why" in mem else viewers * max(0.0, mem["slope"]),
            "wire_bytes_per_s": wire,
            "missing": [x["why"] for x in (cpu, mem, bw) if "why" in x]}


def break_even_cpu(poll: Mapping[str, Any], push: Mapping[str, Any]) -> dict[str, Any]:
    """Updates per poll interval below which push costs less CPU, with the range the fit CIs allow."""
    a, b = poll["cpu"], push["cpu"]
    if "why" in a or "why" in b:
        return {"why": "; ".join(x["why"] for x in (a, b) if "why" in x)}
    return {"per_interval": _div(a["per_unit"], b["per_unit"]),
            "lo": _div(a["per_unit_lo"], b["per_unit_hi"]), "hi": _div(a["per_unit_hi"], b["per_unit_lo"]),
            "how": "CPU per request / CPU per message"}


def break_even_bytes(poll: Mapping[str, Any], push: Mapping[str, Any]) -> dict[str, Any]:
    """Updates per poll interval below which push sends fewer wire bytes, with the per-step range."""
    a, b, split = poll["bandwidth"], push["bandwidth"], poll.get("bytes_split")
    if "why" in a or "why" in b:
        return {"why": "; ".join(x["why"] for x in (a, b) if "why" in x)}
    if split:
        def solve(o: float, pe: float, bm: float) -> float | None:
            return _div(o, bm - pe)
        value = solve(split["overhead_per_request"], split["payload_per_event"], b["per_unit"])
        each = [solve(o, pe, bm) for o, pe in split["per_step"] for bm in b["per_step"]]
        how = "overhead per request / (bytes per message - payload per polled event)"
    else:
        value = _div(a["per_unit"], b["per_unit"])
        each = [_div(x, y) for x in a["per_step"] for y in b["per_step"]]
        how = "bytes per request / bytes per message"
    known = [x for x in each if x is not None]
    return {"per_interval": value, "lo": min(known, default=value), "hi": max(known, default=value), "how": how}


def _viewers(params: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> float | None:
    """The most viewers every compared transport held at a valid step (no extrapolation)."""
    tops = [max((s[2] for s in params[t]["model"]["slo_steps"]), default=None) for t in names]
    tops = [x for x in tops if x]
    return float(min(tops)) if tops else None


def tradeoff(run: str, params: Mapping[str, Mapping[str, Any]], interval: tuple[float | None, str],
             rate: tuple[float | None, str]) -> dict[str, Any]:
    """The whole comparison of one run, JSON-ready: costs, break-even per (polling, push) pair, what is missing."""
    polls, pushes = feed_transports(params)
    out: dict[str, Any] = {"run": run, "poll_interval_s": interval[0], "poll_interval_source": interval[1],
                           "update_rate_per_s": rate[0], "update_rate_source": rate[1],
                           "viewers": None, "costs": [], "break_even": [], "missing": []}
    if not polls:
        out["missing"].append("this run has no polling transport (poll or state): nothing to weigh push "
                              "against; add poll to --transports")
    if not pushes:
        out["missing"].append("this run has no push transport (sse or ws): nothing to weigh polling "
                              "against; add sse or ws to --transports")
    if interval[0] is None and polls:
        out["missing"].append(interval[1])
    if out["missing"]:
        out["sentence"] = tradeoff_sentence(out, params)
        return out
    X = float(interval[0])  # type: ignore[arg-type]
    V = _viewers(params, polls + pushes)
    out["viewers"] = V
    if V is None:
        # e.g. a sweep aborted before any step finished: no viewer count to weigh the costs for.
        out["missing"].append("no polling or push transport has a valid step with its viewers counted")
        out["sentence"] = tradeoff_sentence(out, params)
        return out
    if V is not None and rate[0] is not None:
        out["costs"] = [costs(params[t], V, X, float(rate[0])) for t in polls + pushes]
    for a in polls:
        for b in pushes:
            cpu, wire = break_even_cpu(params[a], params[b]), break_even_bytes(params[a], params[b])
            mem = [params[t]["memory"].get("slope") for t in (a, b)]
            out["break_even"].append({
                "polling": a, "push": b, "cpu": cpu, "bytes": wire,
                "memory_difference_bytes": None if None in mem or V is None else V * (mem[1] - mem[0])})
    out["sentence"] = tradeoff_sentence(out, params)
    return out


def _below(be: Mapping[str, Any], what: str) -> str:
    """'below 6.08 in CPU (95% CI 3.31-11.1)', 'at any rate in CPU', 'never in CPU'."""
    if "why" in be or be.get("per_interval") is None:
        return f"{what} not measured"
    n = be["per_interval"]
    if n == INF:
        return f"at any rate in {what}"
    if n == 0:
        return f"never in {what}"
    ci = ("" if be["lo"] == be["hi"] or "CPU" not in what
          else f" (95% CI {fmt_ratio(be['lo'])}-{fmt_ratio(be['hi'])})")
    return f"below {fmt_ratio(n)} in {what}{ci}"


def _verdict(be: Mapping[str, Any], n0: float) -> str:
    """Which costs push saves at the run's own updates per poll interval `n0`."""
    cheaper = [w for k, w in (("cpu", "CPU"), ("bytes", "bytes"))
               if be[k].get("per_interval") is not None and n0 < be[k]["per_interval"]]
    return {2: "in both", 1: f"in {cheaper[0]} only" if cheaper else "", 0: "in neither"}[len(cheaper)]


def tradeoff_sentence(tr: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]]) -> str:
    """One sentence: against the main polling transport, where each push transport becomes cheaper."""
    if tr["missing"]:
        return "Nothing to weigh: " + "; ".join(tr["missing"]) + "."
    main = next((b for b in tr["break_even"] if b["polling"] == "poll"), tr["break_even"][0])
    poll, X = main["polling"], tr["poll_interval_s"]
    pairs = [b for b in tr["break_even"] if b["polling"] == poll]
    parts = [f"{params[be['push']]['name']} {_below(be['cpu'], 'CPU')} and {_below(be['bytes'], 'bytes')}"
             for be in pairs]
    text = (f"Against {params[poll]['name'].lower()} every {fmt_seconds(X)}, push is cheaper while updates "
            "arrive less often than this many times per poll interval: " + "; ".join(parts))
    u = tr["update_rate_per_s"]
    if u:
        n0 = u * X
        verdicts = ", ".join(f"{params[be['push']]['name']} {_verdict(be, n0)}" for be in pairs)
        text += f"; at this run's {fmt_ratio(n0)} per interval ({fmt_update_rate(u)}), push is cheaper: {verdicts}"
    return text + "."


def _x_range(tr: Mapping[str, Any]) -> tuple[float, float]:
    """Update rates (per second) to draw: a decade and more around the break-evens and the run's rate."""
    X = tr["poll_interval_s"]
    marks = [be[k]["per_interval"] / X for be in tr["break_even"] for k in ("cpu", "bytes")
             if finite(be[k].get("per_interval")) and be[k]["per_interval"] > 0]
    if tr["update_rate_per_s"]:
        marks.append(tr["update_rate_per_s"])
    if not marks:
        return 0.01 / X, 100 / X
    return min(marks) / 20, max(marks) * 20


def tradeoff_figure(tr: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """CPU and wire bytes/s of the run's viewers against the update rate: polling flat, push rising."""
    V, X = tr["viewers"], tr["poll_interval_s"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"CPU for {V:,.0f} viewers (cores)",
                                                        f"wire bytes/s for {V:,.0f} viewers"))
    lo, hi = _x_range(tr)
    rates = np.geomspace(lo, hi, 81).tolist()
    polls, pushes = feed_transports(params)
    for t in polls + pushes:
        curve = [costs(params[t], V, X, u) for u in rates]
        style = {"color": transport_color(t), "dash": "dash" if params[t]["kind"] == "polling" else "solid"}
        label = params[t]["name"] + (f" every {fmt_seconds(X)}" if params[t]["kind"] == "polling" else "")
        for col, key in ((1, "cpu_cores"), (2, "wire_bytes_per_s")):
            ys = [c[key] if c[key] and c[key] > 0 else None for c in curve]
            fig.add_trace(go.Scatter(x=rates, y=ys, mode="lines", name=label, legendgroup=t,
                                     showlegend=col == 1, line=style, meta={"kind": "cost", "transport": t},
                                     hovertemplate="%{x:.3g} updates/s: %{y:,.4~g}<extra>" + label + "</extra>"),
                          row=1, col=col)
    # Break-evens as markers where the two lines cross (a trace: shapes on log axes need log10 coordinates).
    for be in tr["break_even"]:
        for col, key, word in ((1, "cpu", "cpu_cores"), (2, "bytes", "wire_bytes_per_s")):
            n = finite(be[key].get("per_interval"))
            if not n or not lo <= n / X <= hi:
                continue
            y = costs(params[be["push"]], V, X, n / X)[word]
            fig.add_trace(go.Scatter(
                x=[n / X], y=[y], mode="markers", showlegend=False, marker={"symbol": "circle-open", "size": 12,
                                                                           "color": transport_color(be["push"])},
                meta={"kind": "break-even", "polling": be["polling"], "push": be["push"], "what": key},
                hovertemplate=(f"{params[be['push']]['name']} = {params[be['polling']]['name']} in {key} at "
                               f"{fmt_update_rate(n / X)} ({fmt_ratio(n)} per poll interval)<extra></extra>")),
                row=1, col=col)
    if tr["update_rate_per_s"]:
        for col in (1, 2):
            ys = [tr_y for tr_y in (t.y for t in fig.data if t.xaxis == ("x" if col == 1 else "x2")) for tr_y in tr_y
                  if tr_y]
            if ys:
                fig.add_trace(go.Scatter(x=[tr["update_rate_per_s"]] * 2, y=[min(ys), max(ys)], mode="lines",
                                         name=f"this run: {fmt_update_rate(tr['update_rate_per_s'])}",
                                         showlegend=col == 1, line={"color": "#444", "dash": "dot"},
                                         meta={"kind": "run-rate"}, hoverinfo="name"), row=1, col=col)
    fig.update_layout(title="Connections vs requests: cost against update rate", template="plotly_white",
                      height=HEIGHT, legend={"title": {"text": "transport"}})
    fig.update_xaxes(type="log", title_text="updates per second (log)")
    fig.update_yaxes(type="log")
    return fig
