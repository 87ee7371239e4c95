"""Render one self-contained HTML report (plotly.js inlined once, no network references)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from reports import figures, wire
from reports.figures import KIB, POLL_TRANSPORTS, fmt_num
from reports.planner_html import planner_section
from reports.rundir import Run, load_runs
from reports.summary import build_summary, write_summary

BANDS_NOTE = (" Grey bands and crossed markers are invalid steps, never counted as capacity; the "
              "band's label says why.")
FIGURE_NOTES = {
    "memory": "Each marker is one load step: the target's resident memory (RSS) against the TCP "
              "connections it held. The dashed line is a least-squares fit over valid steps; its "
              "slope is the memory cost of one more connection and its intercept the baseline "
              "footprint. Hollow markers are steps whose memory had not settled, left out of the "
              "fit (see hover)." + BANDS_NOTE,
    "throughput": "Work done per second at each step. Polling transports are measured in HTTP "
                  "requests/s (every poll costs a request, whether or not there was news); push "
                  "transports in messages delivered/s." + BANDS_NOTE,
    "latency": "Delivery latency is receive time minus the publish timestamp carried in each "
               "event. Solid lines are p99, dotted p50; the dashed horizontal line is the p99 "
               "SLO. The y axis is logarithmic." + BANDS_NOTE,
    "cpu": "Mean CPU of the target process during each step's measurement window; 100% is one "
           "fully busy core." + BANDS_NOTE,
    "timeline": "Raw resource samples of the target over the whole run: memory should form flat "
                "plateaus during measurement windows, and established connections should match "
                "the users asked for. Ramps or drift here weaken the memory fit.",
}
CSS = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .5rem}
th{background:#f3f3f3}td{text-align:right}td.text{text-align:left}
.warn{color:#8a4b00}.note{color:#555;max-width:60rem}section{margin-bottom:2rem}"""


def _e(value: Any) -> str:
    """Escape any value read from a run directory for HTML text or attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def _ms(value: Any) -> str:
    """Milliseconds with sensible precision."""
    return fmt_num(value, 0 if value is not None and abs(float(value)) >= 10 else 1)


def transport_sentence(transport: str, s: Mapping[str, Any], slo: Mapping[str, Any]) -> str:
    """One plain-language sentence summarising a transport (unescaped text)."""
    held = (f"held {fmt_num(s.get('max_connections'))} connections"
            if s.get("max_connections") is not None else "connections not measured")
    if s.get("mem_per_conn_bytes") is not None:
        lo, hi = s.get("mem_per_conn_ci95") or (None, None)
        mem = (f"{fmt_num(s['mem_per_conn_bytes'], 1, KIB)} KiB per connection (95% CI "
               f"{fmt_num(lo, 1, KIB)}-{fmt_num(hi, 1, KIB)}, R² {fmt_num(s.get('mem_per_conn_r2'), 2)})")
    else:
        mem = "memory per connection not fitted"
    p99 = (s.get("delivery_ms") or {}).get("p99")
    at = s.get("at_step") or {}
    where = (f"{fmt_num(at['connections'])} connections" if at.get("connections") is not None
             else f"{fmt_num(at.get('users'))} users")
    delivery = f"delivery p99 {_ms(p99)} ms at {where}" if p99 is not None else "no delivery latency measured"
    cond = (f"p99 <= {fmt_num(slo.get('delivery_p99_ms'))} ms, "
            f"errors <= {float(slo.get('error_rate', 0)) * 100:g}%")
    if s.get("capacity_at_slo") is not None:
        cap = f"{fmt_num(s['capacity_at_slo'])} connections"
    elif s.get("capacity_at_slo_users") is not None:
        cap = f"{fmt_num(s['capacity_at_slo_users'])} users (connections not measured)"
    else:
        cap = "not met by any valid step"
    if s.get("capacity_is_lower_bound") and s.get("capacity_at_slo_users") is not None:
        cap = f"at least {cap}: the SLO held at every step, so the limit lies beyond this sweep (raise --steps)"
    missed = s.get("missed_ticks")
    # A missed tick is a poll sent late because the last answer was slow: staleness beyond the interval.
    ticks = (f"; {fmt_num(missed)} {'poll missed its' if missed == 1 else 'polls missed their'} tick "
             "(the viewer was still waiting on a slow answer)"
             if transport in POLL_TRANSPORTS and missed else "")
    return f"{transport}: {held}; {mem}; {delivery}; capacity at SLO ({cond}): {cap}{ticks}."


def _table(frame: pd.DataFrame) -> str:
    """A plain HTML table with every cell escaped."""
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="text">{_e(v)}</td>' if c in ("run", "transport")
                         else f"<td>{_e(v)}</td>" for c, v in zip(frame.columns, row)) + "</tr>"
        for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _meta_block(run: Run) -> str:
    """Run metadata as a definition list."""
    m = run.meta
    host, target = m.get("host") or {}, m.get("target") or {}
    items = [
        ("run", run.name), ("directory", run.path),
        ("host", f"{host.get('hostname', '?')} · {host.get('cpus', '?')} CPUs · "
                 f"{host.get('platform', '?')} · Python {host.get('python', '?')}"),
        ("target", f"{target.get('kind', '?')} {target.get('url', '')} · rate {target.get('rate', '?')}/s"
                   f" · payload {target.get('payload', '?')} B"),
        ("start / end", f"{m.get('start', '?')} / {m.get('end', '?')}"),
        ("transports", ", ".join(map(str, m.get("transports") or []))),
        ("steps (users)", ", ".join(map(str, m.get("steps") or []))),
        ("hold per step", f"{m.get('hold_s', '?')} s"),
        ("tool", f"{m.get('tool', '?')} {m.get('version', '')} (git {m.get('git_sha') or 'unknown'})"),
    ]
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    return f"<h3>{_e(run.name)}</h3><dl>{rows}</dl>"


def _findings(runs: Sequence[Run]) -> str:
    """Per-transport sentences and all warnings for every run."""
    parts: list[str] = []
    for run in runs:
        summary = run.summary or {}
        slo = summary.get("slo") or run.meta.get("slo") or {}
        if len(runs) > 1:
            parts.append(f"<h3>{_e(run.name)}</h3>")
        items = []
        for transport, s in (summary.get("transports") or {}).items():
            warns = "".join(f'<li class="warn">warning: {_e(w)}</li>' for w in s.get("warnings") or [])
            items.append(f"<li>{_e(transport_sentence(transport, s, slo))}"
                         + (f"<ul>{warns}</ul>" if warns else "") + "</li>")
        # What the run itself could not measure or what stopped it (meta.json notes), said once per run.
        items += [f'<li class="warn">note: {_e(note)}</li>' for note in run.meta.get("notes") or []]
        parts.append(f"<ul>{''.join(items)}</ul>")
    return "".join(parts)


def _wire_section(steps: pd.DataFrame) -> str:
    """The per-client bytes comparison (Ably's table, measured), with its explanation and notes."""
    frame, notes = wire.wire_table(steps)
    if frame.empty:
        return ""
    extra = "".join(f'<p class="note warn">{_e(n)}</p>' for n in notes)
    return (f'<section id="wire"><h2>{_e(wire.TITLE)}</h2><p class="note">{_e(wire.EXPLANATION)}</p>'
            f"{_table(frame)}{extra}</section>")


def _ensure_summaries(runs: Sequence[Run]) -> None:
    """Compute summary.json for runs that lack one (in memory if the directory is read-only)."""
    for run in runs:
        if run.summary is None:
            try:
                run.summary = write_summary(run.path)
            except OSError:
                run.summary = build_summary(run.meta, run.steps, run.path / "meta.json")


def build_figures(steps: pd.DataFrame, samples: pd.DataFrame, slo_p99_ms: float | None,
                  slo: Mapping[str, Any] | None = None) -> dict[str, go.Figure]:
    """All report figures keyed by name (timeline only when samples exist); `slo` words the bands."""
    figs = {"memory": figures.memory_figure(steps, slo), "throughput": figures.throughput_figure(steps, slo),
            "latency": figures.latency_figure(steps, slo_p99_ms, slo), "cpu": figures.cpu_figure(steps, slo)}
    if not samples.empty:
        figs["timeline"] = figures.timeline_figure(samples)
    return figs


def render_report(run_dirs: Sequence[Path | str], out: Path | str) -> Path:
    """Load runs, build figures and write one self-contained HTML report to `out`."""
    steps, samples, runs = load_runs(run_dirs)
    _ensure_summaries(runs)
    slo = (runs[0].summary or {}).get("slo") or runs[0].meta.get("slo") or {}
    # With several runs the first run's limits word the bands (runs compared are normally alike).
    figs = build_figures(steps, samples, slo.get("delivery_p99_ms"), slo)
    fig_html = []
    for i, (key, fig) in enumerate(figs.items()):
        fig_title = fig.layout.title.text
        # The section heading carries the title; a copy keeps the caller's figure untouched.
        page_fig = go.Figure(fig).update_layout(title=None, margin={"t": 40})
        # plotly.js goes inline with the first figure only: one copy, and no CDN <script src>.
        div = page_fig.to_html(full_html=False, include_plotlyjs=(i == 0),
                               default_height=f"{fig.layout.height}px",
                               config={"displaylogo": False, "responsive": True})
        fig_html.append(f'<section id="fig-{key}"><h2>{_e(fig_title)}</h2>'
                        f'<p class="note">{_e(FIGURE_NOTES[key])}</p>{div}</section>')
    frame = figures.headline_frame({r.name: r.summary or {} for r in runs})
    if len(runs) == 1 and not frame.empty:
        frame = frame.drop(columns="run")
    title = "rtcap capacity report: " + ", ".join(r.name for r in runs)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body><h1>{_e(title)}</h1>
<section id="runs"><h2>Runs</h2>{''.join(_meta_block(r) for r in runs)}</section>
<section id="headline"><h2>Headline numbers</h2>{_table(frame)}
<p class="note">Latency, requests/s and messages/s are taken at the highest-load valid step;
memory per connection is the fitted slope over valid steps whose memory settled; capacity at SLO is the most
connections held at a valid step whose delivery p99 and error rate were within the SLO.</p></section>
<section id="findings"><h2>Findings</h2>{_findings(runs)}</section>
{_wire_section(steps)}
{planner_section(runs)}
{''.join(fig_html)}
</body></html>
"""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
