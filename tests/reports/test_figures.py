"""Tests for rtcap.reports.figures: inspect fig.to_dict(), never rendered output, except the last two, which render
the page to check that figures.FIGURES is how a figure gets into it."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rtcap.reports import figures, model
from rtcap.reports.rundir import load_runs
from rtcap.reports.summary import write_summary

MIB = 1024 * 1024


@pytest.fixture
def steps(run_dir: Path) -> pd.DataFrame:
    return load_runs([run_dir])[0]


def data_traces(fig: Any) -> list[dict]:
    return fig.to_dict()["data"]


def by_name(fig: Any) -> dict[str, dict]:
    return {t["name"]: t for t in data_traces(fig)}


def test_memory_one_trace_per_transport_with_values(steps: pd.DataFrame, truth: dict) -> None:
    traces = by_name(figures.memory_figure(steps))
    extra = {bad["transport"]: bad["connections"] for bad in (truth["invalid"], truth["lagging"])}
    odd = truth["unsettled"]
    for transport, t in truth["transports"].items():
        tr = traces[transport]
        assert tr["mode"] == "markers"
        conns = list(t["conns"]) + ([extra[transport]] if transport in extra else [])
        assert tr["x"] == [float(c) for c in conns]
        expected = [(t["base"] + t["slope"] * c + n
                     + (odd["extra_rss"] if (transport, i) == (odd["transport"], odd["step"]) else 0)) / MIB
                    for i, (c, n) in enumerate(zip(t["conns"], truth["noise"]))]
        assert tr["y"][: len(expected)] == pytest.approx(expected)
    markers = [t for t in data_traces(figures.memory_figure(steps)) if t["mode"] == "markers"]
    assert len(markers) == 4


def test_memory_fit_line_named_and_dashed(steps: pd.DataFrame) -> None:
    fits = [t for t in data_traces(figures.memory_figure(steps)) if t.get("meta", {}).get("kind") == "fit"]
    names = sorted(t["name"] for t in fits)
    assert names == ["poll fit: 2.0 KiB/conn", "sse fit: 20.0 KiB/conn", "state fit: 4.0 KiB/conn",
                     "ws fit: 8.0 KiB/conn"]
    sse = next(t for t in fits if t["meta"]["transport"] == "sse")
    assert sse["line"]["dash"] == "dash"
    # The line ends at the right value: the invalid step (6400 conns) did not bend the slope.
    assert sse["meta"]["slope_bytes"] == pytest.approx(20480.0, rel=1e-3)
    assert sse["y"][1] - sse["y"][0] == pytest.approx(20480.0 * 6400 / MIB, rel=1e-3)


def test_invalid_steps_have_distinct_marker_and_hover_note(steps: pd.DataFrame) -> None:
    for fig in (figures.memory_figure(steps), figures.cpu_figure(steps), figures.latency_figure(steps, 1000)):
        sse = [t for t in data_traces(fig) if t["name"] in ("sse", "sse p99")][0]
        symbols = sse["marker"]["symbol"]
        assert symbols[:6] == ["circle"] * 6 and symbols[6] == figures.INVALID_SYMBOL
        assert sse["customdata"][6][5] == "invalid: load generator saturated (CPU >= 90% of a core)"
        assert sse["customdata"][0][5] == ""
        assert sse["customdata"][6][:5] == ["baseline", "sse", 6, "6,400", "6,400"]
        for word in ("run=", "transport=", "step=", "users=", "connections="):
            assert word in sse["hovertemplate"]


def test_colours_consistent_across_figures(steps: pd.DataFrame) -> None:
    figs = [figures.memory_figure(steps), figures.throughput_figure(steps),
            figures.latency_figure(steps, 1000), figures.cpu_figure(steps)]
    for transport in ("poll", "sse", "ws", "state"):
        colours = {t["marker"]["color"] for f in figs for t in data_traces(f)
                   if t.get("legendgroup") == transport and "marker" in t}
        assert colours == {figures.transport_color(transport)}
    assert len({figures.transport_color(t) for t in ("poll", "sse", "ws", "chat", "custom")}) == 5


def test_throughput_rps_for_polling_msgs_for_push(steps: pd.DataFrame) -> None:
    fig = figures.throughput_figure(steps)
    traces = by_name(fig)
    poll = steps[steps["transport"] == "poll"].sort_values("step")
    ws = steps[steps["transport"] == "ws"].sort_values("step")
    assert traces["poll"]["y"] == pytest.approx(poll["rps"].tolist())
    assert traces["ws"]["y"] == pytest.approx(ws["msgs_per_s"].tolist())
    assert traces["poll"]["xaxis"] == "x" and traces["ws"]["xaxis"] == "x2"
    layout = fig.to_dict()["layout"]
    assert layout["yaxis"]["title"]["text"] == "requests/s"
    assert layout["yaxis2"]["title"]["text"] == "messages/s"


def test_latency_log_axis_p50_p99_and_slo_line(steps: pd.DataFrame, truth: dict) -> None:
    fig = figures.latency_figure(steps, 1000.0)
    traces = by_name(fig)
    assert fig.to_dict()["layout"]["yaxis"]["type"] == "log"
    assert traces["ws p99"]["y"] == pytest.approx(truth["transports"]["ws"]["p99"])
    assert traces["ws p50"]["line"]["dash"] == "dot"
    slo = [t for t in data_traces(fig) if t.get("meta", {}).get("kind") == "slo"]
    assert len(slo) == 1 and slo[0]["y"] == [1000.0, 1000.0]
    assert slo[0]["name"] == "SLO: p99 ≤ 1,000 ms"
    assert not any(t.get("meta", {}).get("kind") == "slo"
                   for t in data_traces(figures.latency_figure(steps, None)))


def test_cpu_figure_values(steps: pd.DataFrame) -> None:
    fig = figures.cpu_figure(steps)
    sse = steps[steps["transport"] == "sse"].sort_values("step")
    assert by_name(fig)["sse"]["y"] == pytest.approx(sse["cpu_percent"].tolist())
    assert "% of one core" in fig.to_dict()["layout"]["yaxis"]["title"]["text"]


def test_two_runs_overlay(run_dir: Path, second_run_dir: Path) -> None:
    steps, samples, _ = load_runs([run_dir, second_run_dir])
    fig = figures.memory_figure(steps)
    markers = {t["name"]: t for t in data_traces(fig) if t["mode"] == "markers"}
    assert set(markers) == {f"{t} · {r}" for t in ("poll", "sse", "ws", "state")
                            for r in ("baseline", "tuned")}
    assert markers["sse · tuned"]["marker"]["symbol"][0] == figures.RUN_SYMBOLS[1]
    assert markers["sse · tuned"]["customdata"][0][0] == "tuned"
    assert len([t for t in data_traces(fig) if "fit:" in t["name"]]) == 8
    timeline = figures.timeline_figure(samples)
    assert len(data_traces(timeline)) == 2 * 8


def test_headline_frame_has_units(run_dir: Path) -> None:
    summary = write_summary(run_dir)
    frame = figures.headline_frame({"baseline": summary})
    assert list(frame["transport"]) == ["Delta polling", "SSE", "WebSocket", "Full-state polling"]
    assert list(frame.columns[2:4]) == ["capacity at SLO (connections)", "max connections"]  # capacity first
    sse = frame.set_index("transport").loc["SSE"]
    assert sse["memory/conn (KiB, 95% CI)"].startswith("20.0 (")
    assert sse["baseline RSS (MiB)"] == "50.0"
    assert sse["capacity at SLO (connections)"] == "1,600"
    assert sse["errors / lost / dup / reordered"].endswith(" / 1 / 0 / 2")
    assert sse["throughput"].endswith(" messages/s")  # push: messages, not the connects' requests/s
    assert frame.set_index("transport").loc["Delta polling", "throughput"].endswith(" requests/s")
    assert "(lower bound)" in frame.set_index("transport").loc["Delta polling", "capacity at SLO (connections)"]
    table = figures.headline_table({"baseline": summary}).to_dict()["data"][0]
    assert table["type"] == "table" and "max connections" in table["header"]["values"]


def bands(fig: Any) -> list[tuple[dict, dict]]:
    """(shape, annotation) pairs of the invalid-step bands, matched by position."""
    layout = fig.to_dict()["layout"]
    shapes = [s for s in layout.get("shapes", []) if s.get("name") == figures.BAND_NAME]
    notes = [a for a in layout.get("annotations", []) if a.get("name") == figures.BAND_NAME]
    assert len(shapes) == len(notes)
    return [(s, next(a for a in notes if a["x"] == pytest.approx((s["x0"] + s["x1"]) / 2)
                     and a["xref"] == s["xref"])) for s in shapes]


def test_invalid_steps_shaded_as_labelled_bands(steps: pd.DataFrame, truth: dict) -> None:
    sat, lag = truth["invalid"], truth["lagging"]
    for fig in (figures.memory_figure(steps), figures.cpu_figure(steps), figures.latency_figure(steps, 1000),
                figures.throughput_figure(steps)):
        found = bands(fig)
        assert len(found) == 2  # one per invalid step; valid steps get none
        by_x = {(s["x0"] + s["x1"]) / 2: (s, a) for s, a in found}
        shape, note = by_x[sat["connections"]]
        assert shape["type"] == "rect" and shape["x0"] < sat["connections"] < shape["x1"]
        assert shape["yref"].endswith("domain") and (shape["y0"], shape["y1"]) == (0, 1)
        assert 0 < shape["opacity"] < 1
        assert note["text"] == "invalid: load generator saturated (CPU >= 90% of a core)"
        assert "sse step 6" in note["hovertext"]
        shape, note = by_x[lag["connections"]]
        assert note["text"] == "invalid: load generator lagging (its timers fired late)"
        assert "state" in note["hovertext"] and "step 5" in note["hovertext"]
    # In the throughput figure each band sits in its transport's subplot.
    refs = {(s["x0"] + s["x1"]) / 2: s["xref"] for s, _ in bands(figures.throughput_figure(steps))}
    assert refs == {lag["connections"]: "x", sat["connections"]: "x2"}


def test_bands_merge_steps_at_same_x_and_name_plain_reasons(make_run, run_dir: Path) -> None:
    raw = pd.read_csv(run_dir / "steps.csv")
    raw.loc[(raw["transport"] == "poll") & (raw["step"] == 5), ["valid", "flags"]] = [False, "users_not_reached"]
    steps = load_runs([make_run("merged", raw)])[0]
    found = bands(figures.cpu_figure(steps))
    assert len(found) == 2  # the poll and state steps at 3,200 connections share one band
    note = next(a for s, a in found if s["x0"] < 3200 < s["x1"])
    assert note["text"] == ("invalid: users not reached (not every user could be started); "
                            "load generator lagging (its timers fired late)")
    assert "poll step 5" in note["hovertext"] and "state step 5" in note["hovertext"]


def test_no_bands_without_invalid_steps(steps: pd.DataFrame) -> None:
    assert bands(figures.memory_figure(steps[steps["valid"]])) == []


def test_unsettled_step_hollow_and_left_out_of_fit(steps: pd.DataFrame, truth: dict) -> None:
    fig = figures.memory_figure(steps)
    odd = truth["unsettled"]
    ws = by_name(fig)["ws"]
    symbols = ws["marker"]["symbol"]
    assert symbols[odd["step"]] == "circle" + figures.UNSETTLED_SUFFIX
    assert [s for i, s in enumerate(symbols) if i != odd["step"]] == ["circle"] * 5
    assert ws["customdata"][odd["step"]][5] == "memory not settled; left out of the fit"
    # Only the memory figure marks it: elsewhere the step is an ordinary valid step.
    assert by_name(figures.cpu_figure(steps))["ws"]["marker"]["symbol"][odd["step"]] == "circle"
    fit = next(t for t in data_traces(fig) if t.get("meta", {}).get("kind") == "fit"
               and t["meta"]["transport"] == "ws")
    assert fit["meta"]["slope_bytes"] == pytest.approx(8192.0, rel=1e-3)
    # The test can fail: the unsettled step, if fitted, bends the slope by more than 1%.
    rows = steps[(steps["transport"] == "ws") & steps["valid"]]
    assert abs(model.fit_line(rows["connections"], rows["rss_bytes"]).slope - 8192.0) > 0.01 * 8192


def test_unsettled_fallback_keeps_steps_and_says_so(make_run, run_dir: Path) -> None:
    raw = pd.read_csv(run_dir / "steps.csv")
    ws = raw["transport"] == "ws"
    raw.loc[ws & (raw["step"] >= 2), "flags"] = "memory_unsettled"  # 2 settled steps left: too few
    steps = load_runs([make_run("unsettled", raw)])[0]
    fig = figures.memory_figure(steps)
    trace = by_name(fig)["ws"]
    assert trace["customdata"][4][5] == "memory not settled; kept in the fit (fewer than 3 settled steps)"
    assert trace["marker"]["symbol"][4] == "circle-open"
    fit = next(t for t in data_traces(fig) if t.get("meta", {}).get("kind") == "fit"
               and t["meta"]["transport"] == "ws")
    rows = steps[(steps["transport"] == "ws") & steps["valid"]]  # all 6, the 16 MiB outlier included
    assert fit["meta"]["slope_bytes"] == pytest.approx(
        model.fit_line(rows["connections"], rows["rss_bytes"]).slope)


def test_band_labels_quote_the_runs_limits(steps: pd.DataFrame) -> None:
    slo = {"generator_cpu_percent": 80, "generator_lag_p99_ms": 50}
    texts = {a["text"] for _, a in bands(figures.memory_figure(steps, slo))}
    assert texts == {"invalid: load generator saturated (CPU >= 80% of a core)",
                     "invalid: load generator lagging (timer lag p99 above 50 ms)"}
    sse = by_name(figures.latency_figure(steps, 1000, slo))["sse p99"]
    assert sse["customdata"][6][5] == "invalid: load generator saturated (CPU >= 80% of a core)"


def test_polled_transports_get_their_own_slo_line() -> None:
    import pandas as pd

    from rtcap.reports.figures import latency_figure

    steps = pd.DataFrame([{"transport": t, "step": 0, "users": 10, "connections": 10.0, "latency_p50_ms": 5.0,
                           "latency_p99_ms": 9.0, "valid": True, "flags": ""} for t in ("poll", "sse")])
    slo = {"delivery_p99_ms": 1000.0, "error_rate": 0.01, "delivery_p99_ms_by_transport": {"poll": 1250.0}}
    lines = {t.name: t.y[0] for t in latency_figure(steps, 1000.0, slo).data if (t.meta or {}).get("kind") == "slo"}
    assert lines == {"SLO: p99 ≤ 1,000 ms": 1000.0, "SLO (poll): staleness p99 ≤ 1,250 ms": 1250.0}


def test_the_page_draws_the_figures_table_in_order(run_dir: Path) -> None:
    from rtcap.reports.content import build_report
    from rtcap.reports.html import render_html

    assert [spec.key for spec in figures.FIGURES] == ["memory", "throughput", "latency", "cpu", "timeline", "shares"]
    page = render_html(build_report([run_dir]))
    shown = [spec for spec in figures.FIGURES if spec.key != "shares"]  # a one-process target has no shares
    assert '<section id="fig-shares">' not in page
    places = [page.index(f'<section id="fig-{spec.key}">') for spec in shown]
    assert places == sorted(places)
    for spec in shown:
        section = page[page.index(f'<section id="fig-{spec.key}">'):]
        assert section.index(html.escape(spec.note)) < section.index("</section>")


def test_a_new_figure_is_one_entry_in_the_table(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The only path for a figure into the page: a builder and a ReportFigure in figures.FIGURES."""
    import plotly.graph_objects as go

    from rtcap.reports.content import build_report
    from rtcap.reports.html import render_html

    def users_figure(data: figures.FigureData) -> go.Figure:
        fig = go.Figure(go.Scatter(x=data.steps["connections"].tolist(), y=data.steps["users"].tolist(),
                                   name="users-trace", mode="markers"))
        return fig.update_layout(title="Users asked for vs connections held", height=figures.HEIGHT)

    tiny = figures.ReportFigure("users", users_figure, "One marker per step: users asked for against connections.")
    never = figures.ReportFigure("never", users_figure, "Not for these runs.", applies=lambda data: False)
    monkeypatch.setattr(figures, "FIGURES", [*figures.FIGURES, tiny, never])
    page = render_html(build_report([run_dir]))
    section = page[page.index('<section id="fig-users">'):]
    section = section[:section.index("</section>")]
    assert "<h2>Users asked for vs connections held</h2>" in section
    assert '<p class="note">One marker per step: users asked for against connections.</p>' in section
    assert 'class="plotly-graph-div"' in section and "users-trace" in section
    assert page.index('id="fig-timeline"') < page.index('id="fig-users"')
    assert 'id="fig-never"' not in page
