"""Plotly figures for capacity reports: long-form steps/samples frames in, go.Figure out.

FIGURES lists the report page's figures (key, builder, note, which runs they apply to); html.py renders
each entry as a section, so a new figure is its builder plus one entry there. Number formats live in units.py.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from rtcap.reports import model
from rtcap.reports.deployment import is_deployment, member_frame
from rtcap.reports.flags import MEMORY_UNSETTLED, has_flag, reasons
from rtcap.reports.slo import BY_TRANSPORT
from rtcap.reports.units import KIB, MIB, fmt_num, throughput_kind, transport_name
from rtcap.targets.transports import REGISTRY

_PALETTE = qualitative.Plotly
# Fixed colours for known transports so a colour means the same thing in every figure and report.
_KNOWN_COLORS = {t.name: _PALETTE[t.colour] for t in REGISTRY if t.colour is not None}
RUN_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "star", "hexagon")
INVALID_SYMBOL = "x"
UNSETTLED_SUFFIX = "-open"  # plotly's hollow variant of a marker symbol
BAND_NAME = "invalid step"
BAND_HALF_WIDTH = 0.015  # of the largest x in the (sub)plot: visible, yet narrower than a step gap
BAND_STYLE = {"fillcolor": "#7f7f7f", "opacity": 0.18, "line_width": 0, "layer": "below"}
HEIGHT = 460
X_TITLE = "connections held by target"


def transport_color(transport: str) -> str:
    """Stable colour for a transport name (known names fixed, others hashed into the palette)."""
    if transport in _KNOWN_COLORS:
        return _KNOWN_COLORS[transport]
    spare = _PALETTE[len(_KNOWN_COLORS):]
    return spare[zlib.crc32(transport.encode()) % len(spare)]


def _groups(df: pd.DataFrame) -> Iterator[tuple[str, str, int, pd.DataFrame]]:
    """Yield (label, transport, run index, rows) per run and transport, in a stable order."""
    runs = list(dict.fromkeys(df["run"])) if "run" in df else [""]
    frame = df if "run" in df else df.assign(run="")
    transports = list(dict.fromkeys(frame["transport"]))
    for transport in transports:
        for i, run in enumerate(runs):
            rows = frame[(frame["transport"] == transport) & (frame["run"] == run)]
            if len(rows):
                label = transport if len(runs) == 1 else f"{transport} · {run}"
                yield label, transport, i, rows.sort_values("step")


def _clean(values: pd.Series, scale: float = 1.0) -> list[float | None]:
    """Plain list for plotly (numpy arrays would be base64-encoded in to_dict)."""
    return [None if pd.isna(v) else float(v) / scale for v in values]


def _steps_trace(rows: pd.DataFrame, label: str, transport: str, run_index: int, column: str,
                 scale: float, value_label: str, mode: str, dash: str = "solid",
                 unsettled: Mapping[Any, str] | None = None,
                 slo: Mapping[str, Any] | None = None) -> go.Scatter:
    """One trace for one run/transport; invalid steps get a distinct marker and hover note.

    `unsettled` maps row index -> hover note for valid steps drawn hollow (memory figure only);
    `slo` (meta.json) supplies the limits quoted in the notes.
    """
    symbol = RUN_SYMBOLS[run_index % len(RUN_SYMBOLS)]
    unsettled = unsettled or {}
    valid = rows["valid"].astype(bool).tolist()
    notes = [unsettled.get(idx, "") if ok else "invalid: " + reasons(f, "not counted", slo)
             for idx, ok, f in zip(rows.index, valid, rows["flags"])]
    symbols = [INVALID_SYMBOL if not ok else symbol + UNSETTLED_SUFFIX if idx in unsettled else symbol
               for idx, ok in zip(rows.index, valid)]
    run = rows["run"] if "run" in rows else pd.Series([""] * len(rows), index=rows.index)
    custom = [[r, transport, int(s), fmt_num(u), fmt_num(c), n]
              for r, s, u, c, n in zip(run, rows["step"], rows["users"], rows["connections"], notes)]
    color = transport_color(transport)
    return go.Scatter(
        x=_clean(rows["connections"]), y=_clean(rows[column], scale), mode=mode, name=label,
        legendgroup=transport, customdata=custom,
        line={"color": color, "dash": dash},
        marker={"color": color, "size": 9, "symbol": symbols},
        hovertemplate=("run=%{customdata[0]}<br>transport=%{customdata[1]}<br>step=%{customdata[2]}"
                       "<br>users=%{customdata[3]}<br>connections=%{customdata[4]}"
                       f"<br>{value_label}=%{{y:,.4~g}}<br>%{{customdata[5]}}<extra></extra>"),
    )


def add_invalid_bands(fig: go.Figure, groups: Sequence[tuple[str, pd.DataFrame, int | None]],
                      slo: Mapping[str, Any] | None = None) -> None:
    """Shade a translucent vertical band at each invalid step's connections, labelled with why.

    `groups` holds (label, rows, subplot column or None for a plain figure). Steps of several
    transports or runs at the same x share one band, so labels never pile up.
    """
    places: dict[tuple[int | None, float], list[tuple[str, str]]] = {}
    xmax: dict[int | None, float] = {}
    for label, rows, col in groups:
        known = rows["connections"].dropna()
        xmax[col] = max([xmax.get(col, 0.0), *known.astype(float)])
        bad = rows[~rows["valid"].astype(bool) & rows["connections"].notna()]
        for _, r in bad.iterrows():
            why = reasons(r["flags"], "not counted", slo)
            places.setdefault((col, float(r["connections"])), []).append(
                (f"{label} step {int(r['step'])}: {why}", why))
    for (col, x), items in places.items():
        half = max(BAND_HALF_WIDTH * xmax[col], 0.5)
        text = "invalid: " + "; ".join(dict.fromkeys(why for _, why in items))
        where = {} if col is None else {"row": 1, "col": col}
        fig.add_vrect(x0=x - half, x1=x + half, name=BAND_NAME, annotation_position="top",
                      annotation={"text": text, "hovertext": "<br>".join(h for h, _ in items),
                                  "textangle": -90, "font": {"size": 10, "color": "#555"},
                                  # Lines cross the band; a veil behind the label keeps it legible.
                                  "bgcolor": "rgba(255,255,255,0.75)",
                                  "name": BAND_NAME}, **BAND_STYLE, **where)


def _unsettled_notes(rows: pd.DataFrame) -> dict[Any, str]:
    """Hover notes for valid steps whose memory had not settled, saying what the fit did with them."""
    selection = model.select_fit_steps(rows, "rss_bytes")
    note = (f"memory not settled; kept in the fit (fewer than {model.MIN_FIT_POINTS} settled steps)"
            if selection.fallback else "memory not settled; left out of the fit")
    marked = rows[rows["valid"].astype(bool) & has_flag(rows, MEMORY_UNSETTLED)]
    return {idx: note for idx in marked.index}


def _layout(fig: go.Figure, title: str, y_title: str) -> go.Figure:
    """Shared look: white template, fixed height, titled axes."""
    fig.update_layout(title=title, template="plotly_white", height=HEIGHT, hovermode="closest",
                      legend={"title": {"text": "transport"}})
    fig.update_xaxes(title_text=X_TITLE, rangemode="tozero")
    fig.update_yaxes(title_text=y_title)
    return fig


def memory_figure(steps: pd.DataFrame, slo: Mapping[str, Any] | None = None) -> go.Figure:
    """Target RSS (MiB) vs connections per transport, with the line fitted over valid, settled steps."""
    fig = go.Figure()
    groups = list(_groups(steps))
    for label, transport, i, rows in groups:
        fig.add_trace(_steps_trace(rows, label, transport, i, "rss_bytes", MIB, "RSS (MiB)", "markers",
                                   unsettled=_unsettled_notes(rows), slo=slo))
        # Leaves out invalid steps and, when enough remain, steps whose memory had not settled.
        fit = model.memory_fit(rows, "rss_bytes")
        if fit is None:
            continue
        # Drawn from zero connections so the intercept (baseline RSS) is visible.
        x1 = float(rows["connections"].max())
        fig.add_trace(go.Scatter(
            x=[0.0, x1], y=[fit.intercept / MIB, fit.predict(x1) / MIB], mode="lines",
            name=f"{label} fit: {fit.slope / KIB:.1f} KiB/conn", legendgroup=transport,
            line={"color": transport_color(transport), "dash": "dash"}, hoverinfo="skip",
            meta={"kind": "fit", "transport": transport, "slope_bytes": fit.slope}))
    add_invalid_bands(fig, [(label, rows, None) for label, _, _, rows in groups], slo)
    return _layout(fig, "Target memory vs connections (RSS, MiB)", "target RSS (MiB)")


def throughput_figure(steps: pd.DataFrame, slo: Mapping[str, Any] | None = None) -> go.Figure:
    """Requests/s for polling transports and messages/s for push transports vs connections."""
    kinds = {"poll": ("polling: HTTP requests/s", "requests/s", "rps"),
             "push": ("push: messages delivered/s", "messages/s", "msgs_per_s")}
    groups = [(g, throughput_kind(g[1], g[3])) for g in _groups(steps)]
    present = [k for k in kinds if any(kind == k for _, kind in groups)] or ["push"]
    fig = make_subplots(rows=1, cols=len(present), subplot_titles=[kinds[k][0] for k in present])
    for (label, transport, i, rows), kind in groups:
        col = present.index(kind) + 1
        _, unit, column = kinds[kind]
        fig.add_trace(_steps_trace(rows, label, transport, i, column, 1.0, unit, "lines+markers", slo=slo),
                      row=1, col=col)
    add_invalid_bands(fig, [(g[0], g[3], present.index(kind) + 1) for g, kind in groups], slo)
    _layout(fig, "Throughput vs connections", kinds[present[0]][1])
    for col, kind in enumerate(present, start=1):
        fig.update_yaxes(title_text=kinds[kind][1], row=1, col=col)
    return fig


def latency_figure(steps: pd.DataFrame, slo_p99_ms: float | None = None,
                   slo: Mapping[str, Any] | None = None) -> go.Figure:
    """Delivery latency p50 (dotted) and p99 (solid) vs connections, log y, with the SLO line."""
    fig = go.Figure()
    groups = list(_groups(steps))
    for label, transport, i, rows in groups:
        for q, dash in (("p99", "solid"), ("p50", "dot")):
            fig.add_trace(_steps_trace(rows, f"{label} {q}", transport, i, f"latency_{q}_ms", 1.0,
                                       f"delivery {q} (ms)", "lines+markers", dash, slo=slo))
    add_invalid_bands(fig, [(label, rows, None) for label, _, _, rows in groups], slo)
    if slo_p99_ms is not None:
        # A trace rather than a shape: shapes and annotations on log axes need log10 coordinates.
        x1 = float(steps["connections"].max()) if steps["connections"].notna().any() else 1.0
        fig.add_trace(go.Scatter(
            x=[0.0, x1], y=[slo_p99_ms, slo_p99_ms], mode="lines",
            name=f"SLO: p99 ≤ {fmt_num(slo_p99_ms)} ms", line={"color": "#444", "dash": "dash"},
            hoverinfo="name", meta={"kind": "slo"}))
        # Polled transports are held to their interval plus a slack (reports/slo.py): their own line.
        present = set(steps["transport"]) if "transport" in steps else set()
        polled = {t: limit for t, limit in ((slo or {}).get(BY_TRANSPORT) or {}).items() if t in present}
        for limit in sorted(set(polled.values())):
            names = ", ".join(t for t, value in polled.items() if value == limit)
            fig.add_trace(go.Scatter(
                x=[0.0, x1], y=[limit, limit], mode="lines",
                name=f"SLO ({names}): staleness p99 ≤ {fmt_num(limit)} ms", line={"color": "#444", "dash": "dot"},
                hoverinfo="name", meta={"kind": "slo", "transports": sorted(polled)}))
    _layout(fig, "Delivery latency vs connections (publish → receive, ms, log scale)",
            "delivery latency (ms)")
    fig.update_yaxes(type="log")
    return fig


def cpu_figure(steps: pd.DataFrame, slo: Mapping[str, Any] | None = None) -> go.Figure:
    """Target CPU (% of one core) vs connections per transport."""
    fig = go.Figure()
    groups = list(_groups(steps))
    for label, transport, i, rows in groups:
        fig.add_trace(_steps_trace(rows, label, transport, i, "cpu_percent", 1.0, "target CPU (%)",
                                   "lines+markers", slo=slo))
    add_invalid_bands(fig, [(label, rows, None) for label, _, _, rows in groups], slo)
    return _layout(fig, "Target CPU vs connections (% of one core)", "target CPU (% of one core)")


def timeline_figure(samples: pd.DataFrame) -> go.Figure:
    """Target RSS (MiB) and established TCP connections over elapsed time, per transport."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("target RSS (MiB)", "established TCP connections"))
    target = samples[samples["role"] == "target"]
    if "run" not in target:
        target = target.assign(run="")
    runs = list(dict.fromkeys(target["run"]))
    for transport in dict.fromkeys(target["transport"]):
        for run in runs:
            rows = target[(target["transport"] == transport) & (target["run"] == run)].sort_values("t")
            if rows.empty:
                continue
            label = transport if len(runs) == 1 else f"{transport} · {run}"
            style = {"legendgroup": transport, "line": {"color": transport_color(transport)}}
            fig.add_trace(go.Scatter(x=_clean(rows["elapsed_s"]), y=_clean(rows["rss_bytes"], MIB),
                                     mode="lines", name=label, **style), row=1, col=1)
            fig.add_trace(go.Scatter(x=_clean(rows["elapsed_s"]), y=_clean(rows["tcp_established"]),
                                     mode="lines", name=label, showlegend=False, **style), row=2, col=1)
    fig.update_layout(title="Target resources over time", template="plotly_white", height=HEIGHT + 120,
                      legend={"title": {"text": "transport"}})
    fig.update_xaxes(title_text="elapsed (s)", row=2, col=1)
    fig.update_yaxes(title_text="RSS (MiB)", row=1, col=1)
    fig.update_yaxes(title_text="connections", row=2, col=1)
    return fig


MEMBER_COLORS = {"worker": "#4c78a8", "broker": "#e45756", "supervisor": "#bab0ac"}


def shares_figure(samples: pd.DataFrame) -> go.Figure:
    """A deployment's memory and CPU per role (workers, broker, supervisor) at each measured step, stacked: the
    summed target split into what its processes hold (reports/deployment.py)."""
    members = member_frame(samples)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("RSS by role (MiB)", "CPU by role (% of one core)"))
    run = members["run"] if "run" in members and members["run"].nunique() > 1 else None
    members = members.assign(x=(run + " · " if run is not None else "") + members["transport"].map(transport_name)
                             + " step " + members["step"].astype(int).astype(str))
    for member, rows in members.groupby("member", sort=False):
        hover = [f"{n:.0f} process(es), {c:.0f} connections" for n, c in zip(rows["processes"], rows["connections"])]
        style = {"marker": {"color": MEMBER_COLORS.get(member)}, "legendgroup": member, "hovertext": hover}
        fig.add_trace(go.Bar(x=rows["x"], y=_clean(rows["rss_bytes"], MIB), name=member, **style), row=1, col=1)
        fig.add_trace(go.Bar(x=rows["x"], y=_clean(rows["cpu_percent"]), name=member, showlegend=False, **style),
                      row=2, col=1)
    fig.update_layout(title="Deployment: memory and CPU per role", template="plotly_white", barmode="stack",
                      height=HEIGHT + 120, legend={"title": {"text": "role"}})
    return fig


@dataclass(frozen=True)
class FigureData:
    """What the report's figures are drawn from: every run's steps and samples (long form, with a `run` column
    when several runs are overlaid) and the first run's SLO, which words the bands and draws the limit lines."""

    steps: pd.DataFrame
    samples: pd.DataFrame
    slo: Mapping[str, Any]


def _always(data: FigureData) -> bool:
    """Every report can show the figure."""
    return True


@dataclass(frozen=True)
class ReportFigure:
    """One figure of the report page, in FIGURES order: its section is `<section id="fig-{key}">` headed by the
    figure's own title, with `note` under it; `applies` says whether the runs at hand can show it."""

    key: str
    build: Callable[[FigureData], go.Figure]
    note: str
    applies: Callable[[FigureData], bool] = _always


BANDS_NOTE = (" Grey bands and crossed markers are invalid steps, never counted as capacity; the "
              "band's label says why.")
FIGURES: list[ReportFigure] = [
    ReportFigure("memory", lambda d: memory_figure(d.steps, d.slo),
                 "Each marker is one load step: the target's resident memory (RSS) against the TCP "
                 "connections it held. The dashed line is a least-squares fit over valid steps; its "
                 "slope is the memory cost of one more connection and its intercept the baseline "
                 "footprint. Hollow markers are steps whose memory had not settled, left out of the "
                 "fit (see hover)." + BANDS_NOTE),
    ReportFigure("throughput", lambda d: throughput_figure(d.steps, d.slo),
                 "Work done per second at each step. Polling transports are measured in HTTP "
                 "requests/s (every poll costs a request, whether or not there was news); push "
                 "transports in messages delivered/s." + BANDS_NOTE),
    ReportFigure("latency", lambda d: latency_figure(d.steps, d.slo.get("delivery_p99_ms"), d.slo),
                 "Delivery latency is receive time minus the publish timestamp carried in each "
                 "event. Solid lines are p99, dotted p50; the dashed horizontal line is the p99 "
                 "SLO. The y axis is logarithmic." + BANDS_NOTE),
    ReportFigure("cpu", lambda d: cpu_figure(d.steps, d.slo),
                 "Mean CPU of the target process during each step's measurement window; 100% is one "
                 "fully busy core." + BANDS_NOTE),
    ReportFigure("timeline", lambda d: timeline_figure(d.samples),
                 "Raw resource samples of the target over the whole run: memory should form flat "
                 "plateaus during measurement windows, and established connections should match "
                 "the users asked for. Ramps or drift here weaken the memory fit.",
                 applies=lambda d: not d.samples.empty),
    ReportFigure("shares", lambda d: shares_figure(d.samples),
                 "A target of several processes (workers on one port and the broker that fans events out to them) "
                 "split by role at each measured step: the summed memory and CPU above are these bars' totals. "
                 "Hover a bar for its processes and the inbound connections they held.",
                 applies=lambda d: is_deployment(d.samples)),
]
"""The report page's figures, in page order. Adding one: write `def my_figure(data: FigureData) -> go.Figure`
(title it with fig.update_layout(title=...): the title heads its section) and add
`ReportFigure("my", my_figure, "what it shows")` here; html.py draws whatever this list holds."""


def report_figures(data: FigureData) -> list[tuple[ReportFigure, go.Figure]]:
    """The figures of FIGURES that apply to `data`, each built, in page order."""
    return [(spec, spec.build(data)) for spec in FIGURES if spec.applies(data)]


def headline_frame(summaries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One formatted row per run and transport from summary dicts keyed by run label.

    Capacity comes first, as the figure a reader looks for; throughput is requests/s for polling and
    messages/s for push (whose requests/s, only connects, read as missing data at steady state).
    """
    rows = []
    for run, summary in summaries.items():
        for transport, s in summary.get("transports", {}).items():
            ci = s.get("mem_per_conn_ci95") or [None, None]
            mem = fmt_num(s.get("mem_per_conn_bytes"), 1, KIB)
            if ci[0] is not None:
                mem += f" ({fmt_num(ci[0], 1, KIB)}–{fmt_num(ci[1], 1, KIB)})"
            lat = s.get("delivery_ms") or {}
            polled = throughput_kind(transport) == "poll"
            rate = s.get("rps") if polled else s.get("msgs_per_s")
            rows.append({
                "run": run, "transport": transport_name(transport),
                "capacity at SLO (connections)": fmt_num(s.get("capacity_at_slo"))
                + (" (lower bound)" if s.get("capacity_is_lower_bound") else ""),
                "max connections": fmt_num(s.get("max_connections")),
                "memory/conn (KiB, 95% CI)": mem,
                "baseline RSS (MiB)": fmt_num(s.get("baseline_rss_bytes"), 1, MIB),
                "delivery p50 / p95 / p99 (ms)": " / ".join(fmt_num(lat.get(q), 1) for q in ("p50", "p95", "p99")),
                "throughput": "–" if rate is None else f"{fmt_num(rate, 1)} {'requests' if polled else 'messages'}/s",
                "bytes/event (B)": fmt_num(s.get("bytes_per_event"), 1),
                "errors / lost / dup / reordered": " / ".join(fmt_num(s.get(k)) for k in
                                                              ("errors", "lost", "duplicated", "reordered")),
            })
    return pd.DataFrame(rows)


def headline_table(summaries: Mapping[str, Mapping[str, Any]]) -> go.Figure:
    """The headline numbers as a go.Table figure (for notebooks; the HTML page uses a plain table)."""
    frame = headline_frame(summaries)
    fig = go.Figure(go.Table(header={"values": list(frame.columns)},
                             cells={"values": [frame[c].tolist() for c in frame.columns]}))
    fig.update_layout(title="Headline numbers", template="plotly_white")
    return fig
