"""Render one self-contained HTML report (plotly.js inlined once, no network references).

The figure sections come from figures.FIGURES, in its order; nothing here names a figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from plotly.offline import get_plotlyjs

from rtcap.reports import figures, patterns, wire
from rtcap.reports.content import Report, build_report
from rtcap.reports.page import esc as _e
from rtcap.reports.page import table as _table
from rtcap.reports.planner_html import planner_section
from rtcap.reports.rundir import Run
from rtcap.reports.sections import comparison_section, fig_div, findings_section, headline_section, tradeoff_section

__all__ = ["render_html", "render_report"]

CSS = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .5rem}
th{background:#f3f3f3}td{text-align:right}td.text{text-align:left}
.warn{color:#8a4b00}.note{color:#555;max-width:60rem}section{margin-bottom:2rem}
.sentences li{margin:.3rem 0;max-width:70rem}.fact{border-bottom:1px dotted #888;cursor:help}
.fact sup a{color:#888;text-decoration:none;font-size:.7em;margin-left:1px}.sources{font-size:.8rem;color:#555}
.lead{font-size:1.05rem;max-width:70rem}"""


def _meta_block(run: Run, sampled_from: str) -> str:
    """Run metadata as a definition list."""
    m = run.meta
    host, target = m.get("host") or {}, m.get("target") or {}
    items = [
        ("run", run.name), ("directory", run.path),
        ("host", f"{host.get('hostname', '?')} · {host.get('cpus', '?')} CPUs · "
                 f"{host.get('platform', '?')} · Python {host.get('python', '?')}"),
        ("target", f"{target.get('kind', '?')} {target.get('url', '')} · rate {target.get('rate', '?')}/s"
                   f" · payload {target.get('payload', '?')} B · {sampled_from}"),
        ("start / end", f"{m.get('start', '?')} / {m.get('end', '?')}"),
        ("transports", ", ".join(map(str, m.get("transports") or []))),
        ("steps (users)", ", ".join(map(str, m.get("steps") or []))),
        ("hold per step", f"{m.get('hold_s', '?')} s"),
        ("tool", f"{m.get('tool', '?')} {m.get('version', '')} (git {m.get('git_sha') or 'unknown'})"),
    ]
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    return f"<h3>{_e(run.name)}</h3><dl>{rows}</dl>"


def _wire_section(steps: pd.DataFrame) -> str:
    """The per-client bytes comparison (Ably's table, measured), with its explanation and notes."""
    frame, notes = wire.wire_table(steps)
    if frame.empty:
        return ""
    extra = "".join(f'<p class="note warn">{_e(n)}</p>' for n in notes)
    return (f'<section id="wire"><h2>{_e(wire.TITLE)}</h2><p class="note">{_e(wire.EXPLANATION)}</p>'
            f"{_table(frame)}{extra}</section>")


def _patterns_section(runs: Sequence[Run]) -> str:
    """The pattern figures (304s, cache, round trips, fan-out...) of the transports that measured any."""
    frame = patterns.patterns_frame({r.name: r.summary or {} for r in runs})
    if frame.empty:
        return ""
    return (f'<section id="patterns"><h2>{_e(patterns.TITLE)}</h2><p class="note">{_e(patterns.EXPLANATION)}</p>'
            f"{_table(frame)}</section>")


def render_html(report: Report) -> str:
    """The whole self-contained page for a built report."""
    runs, slo = report.runs, report.slo
    # With several runs the first run's limits word the bands (runs compared are normally alike).
    data = figures.FigureData(steps=report.steps, samples=report.samples, slo=slo)
    fig_html = [f'<section id="fig-{spec.key}"><h2>{_e(fig.layout.title.text)}</h2>'
                f'<p class="note">{_e(spec.note)}</p>{fig_div(fig)}</section>'
                for spec, fig in figures.report_figures(data)]
    frame = figures.headline_frame({r.name: r.summary or {} for r in runs})
    if len(runs) == 1 and not frame.empty:
        frame = frame.drop(columns="run")
    title = "rtcap capacity report: " + ", ".join(r.name for r in runs)
    # plotly.js goes inline once, before any figure: no CDN <script src>, the page works offline.
    plotlyjs = ("<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
                f'<script charset="utf-8">{get_plotlyjs()}</script>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style>{plotlyjs}</head>
<body><h1>{_e(title)}</h1>
{headline_section(report)}
<section id="headline"><h2>Headline numbers</h2>{_table(frame)}
<p class="note">Latency, requests/s and messages/s are taken at the highest-load valid step;
memory per connection is the fitted slope over valid steps whose memory settled; capacity at SLO is the most
connections held at a valid step whose delivery p99 and error rate were within the SLO.</p></section>
{findings_section(report)}
{_wire_section(report.steps)}
{_patterns_section(runs)}
{tradeoff_section(report)}
{comparison_section(report)}
{planner_section(runs)}
{''.join(fig_html)}
<section id="runs"><h2>Runs</h2>{''.join(_meta_block(r, report.sampled_from[r.name]) for r in runs)}</section>
</body></html>
"""


def render_report(run_dirs: Sequence[Path | str], out: Path | str) -> Path:
    """Load runs, build figures and write one self-contained HTML report to `out`."""
    page = render_html(build_report(run_dirs))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
