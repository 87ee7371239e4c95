"""HTML of the report's derived sections: headline sentences, warnings, connections vs requests, comparison."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from rtcap.reports.compare import METHOD, comparison_frame
from rtcap.reports.content import Report
from rtcap.reports.headline import Fact, Sentence
from rtcap.reports.page import esc, table
from rtcap.reports.tradeoff import INF, tradeoff_figure
from rtcap.reports.units import MIB, fmt_bytes, fmt_num, fmt_ratio, fmt_seconds, fmt_update_rate

TRADEOFF_NOTE = (
    "For the same viewers and the same freshness: polling asks once per interval whether or not anything "
    "changed, so it costs requests (CPU per request, bytes per request) at a fixed rate; push holds one "
    "connection per viewer (memory) and pays per delivered update (CPU and bytes per message). Costs are "
    "this run's measured model (the planner's: CPU fitted per request or message over valid steps, memory "
    "per connection, wire bytes per request or message), marginal (the idle process is paid either way), "
    "for the most viewers every transport held at a valid step. Polling's freshness is its interval; push "
    "delivers each update as it happens, so push is at least as fresh. The break-even is the update rate "
    "at which push and polling cost the same: above it polling's batching wins. Delta polling's bytes "
    "grow with the update rate when the run counted payload (overhead per request plus payload per "
    "event); full-state polling sends the whole state every time.")


def fig_div(fig: go.Figure) -> str:
    """A figure's div; plotly.js itself is inlined once in the page head."""
    page_fig = go.Figure(fig).update_layout(title=None, margin={"t": 40})
    return page_fig.to_html(full_html=False, include_plotlyjs=False, default_height=f"{fig.layout.height}px",
                            config={"displaylogo": False, "responsive": True})


def _sentence_html(s: Sentence, number: Callable[[Fact], int]) -> str:
    """A sentence whose figures carry their source as a tooltip and a footnote number."""
    out = []
    for part in s.parts:
        if isinstance(part, Fact):
            n = number(part)
            out.append(f'<span class="fact" title="{esc(part.source)}">{esc(part.text)}'
                       f'<sup><a href="#src-{n}">{n}</a></sup></span>')
        else:
            out.append(esc(part))
    return "".join(out)


def headline_section(report: Report) -> str:
    """One sentence per transport at the top of the page, with numbered sources below."""
    sources: list[str] = []

    def number(f: Fact) -> int:
        sources.append(f.source)
        return len(sources)

    parts = []
    for run in report.runs:
        if len(report.runs) > 1:
            parts.append(f"<h3>{esc(run.name)}</h3>")
        items = "".join(f'<li data-transport="{esc(s.transport)}">{_sentence_html(s, number)}</li>'
                        for s in report.sentences[run.name])
        parts.append(f'<ul class="sentences">{items}</ul>')
    notes = "".join(f'<li id="src-{i}">{esc(src)}</li>' for i, src in enumerate(sources, start=1))
    return (f'<section id="summary"><h2>In one sentence per transport</h2>{"".join(parts)}'
            '<details><summary>Where each figure comes from (also on hover)</summary>'
            f'<ol class="sources">{notes}</ol></details></section>')


def findings_section(report: Report) -> str:
    """Every warning of every transport, and what each run noted about itself."""
    parts: list[str] = []
    for run in report.runs:
        if len(report.runs) > 1:
            parts.append(f"<h3>{esc(run.name)}</h3>")
        items = [f'<li class="warn">{esc(t)}: warning: {esc(w)}</li>'
                 for t, s in ((run.summary or {}).get("transports") or {}).items() for w in s.get("warnings") or []]
        # What the run itself could not measure or what stopped it (meta.json notes), said once per run.
        items += [f'<li class="warn">note: {esc(note)}</li>' for note in run.meta.get("notes") or []]
        parts.append(f"<ul>{''.join(items)}</ul>" if items else "<p>No warnings.</p>")
    return f'<section id="findings"><h2>Warnings and notes</h2>{"".join(parts)}</section>'


def costs_frame(tr: Mapping[str, Any]) -> pd.DataFrame:
    """What V viewers cost per transport at the run's update rate and poll interval."""
    X, rows = tr["poll_interval_s"], []
    for c in tr["costs"]:
        polling = c["kind"] == "polling"
        unit = "requests/s" if c["unit"] == "request" else "messages/s"
        rows.append({"transport": c["name"] + (f" every {fmt_seconds(X)}" if polling else ""),
                     "work": f"{fmt_num(c['work_per_s'])} {unit}",
                     "CPU (cores)": fmt_num(c["cpu_cores"], 3),
                     "memory (MiB)": fmt_num(c["memory_bytes"], 1, MIB),
                     "wire bytes/s": ("–" if c["wire_bytes_per_s"] is None
                                      else fmt_bytes(c["wire_bytes_per_s"]) + "/s"),
                     "freshness": f"stale up to {fmt_seconds(X)}" if polling else "pushed as it happens"})
    return pd.DataFrame(rows, columns=["transport", "work", "CPU (cores)", "memory (MiB)", "wire bytes/s",
                                       "freshness"])


def _n(be: Mapping[str, Any], X: float, ci: bool) -> tuple[str, str]:
    """(updates per interval with range, the same per second) for one break-even."""
    if "why" in be:
        return "not measured", "–"
    n = be["per_interval"]
    if n in (INF, 0):
        return ("push always cheaper", "–") if n == INF else ("push never cheaper", "–")
    rng = f" ({fmt_ratio(be['lo'])}-{fmt_ratio(be['hi'])})" if ci and be["lo"] != be["hi"] else ""
    return f"{fmt_ratio(n)}{rng}", fmt_update_rate(n / X)


def break_even_frame(tr: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Per (polling, push) pair: updates per poll interval below which push is cheaper."""
    X, V, rows = tr["poll_interval_s"], tr["viewers"], []
    for be in tr["break_even"]:
        cpu, cpu_s = _n(be["cpu"], X, True)
        wire, wire_s = _n(be["bytes"], X, False)
        mem = be["memory_difference_bytes"]
        rows.append({"polling": f"{params[be['polling']]['name']} every {fmt_seconds(X)}",
                     "push": params[be["push"]]["name"],
                     "CPU: push cheaper below (updates per poll interval, 95% CI)": cpu, "CPU: as updates/s": cpu_s,
                     "bytes: push cheaper below (updates per poll interval)": wire, "bytes: as updates/s": wire_s,
                     f"memory for {fmt_num(V)} viewers, push minus polling": "–" if mem is None else
                     ("+" if mem > 0 else "") + f"{fmt_num(mem, 1, MIB)} MiB"})
    return pd.DataFrame(rows)


def tradeoff_section(report: Report) -> str:
    """Connections vs requests: costs, break-even table, one sentence and the cost curves, per run."""
    parts = []
    for run in report.runs:
        tr, params = report.tradeoffs[run.name], report.params[run.name]
        if len(report.runs) > 1:
            parts.append(f"<h3>{esc(run.name)}</h3>")
        parts.append(f'<p class="lead">{esc(tr["sentence"])}</p>')
        if tr["missing"]:
            continue
        if tr["costs"]:
            parts.append(f"<h4>What {fmt_num(tr['viewers'])} viewers cost at this run's "
                         f"{fmt_update_rate(tr['update_rate_per_s'])}</h4>{table(costs_frame(tr))}")
        parts.append(f"<h4>Break-even</h4>{table(break_even_frame(tr, params))}")
        parts.append(fig_div(tradeoff_figure(tr, params)))
        parts.append(f'<p class="note">Poll interval: {esc(tr["poll_interval_source"])}. Update rate: '
                     f'{esc(tr["update_rate_source"])}.</p>')
    return (f'<section id="tradeoff"><h2>Connections vs requests</h2><p class="note">{esc(TRADEOFF_NOTE)}</p>'
            f'{"".join(parts)}</section>')


def comparison_section(report: Report) -> str:
    """Differences of the headline figures between the first run and each other run."""
    if not report.comparison:
        return ""
    frame = comparison_frame(report.comparison)
    titles: list[Sequence[str]] = [[r["how"] if c == "figure" else "" for c in frame.columns]
                                   for r in report.comparison]
    return (f'<section id="comparison"><h2>Differences between runs</h2><p class="note">Each other run '
            f'against the first, {esc(report.runs[0].name)}. {esc(METHOD)}</p>{table(frame, titles)}</section>')
