"""The report as JSON (for tools) and as short markdown (for a CI job summary or a PR comment).

Every piece of text in the markdown passes rtcap.reports.summary.md_text on its way in: names, notes, warnings and
threshold details can carry what a server or an adapter said, and CI renders the file with its inline HTML.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from rtcap.reports.compare import comparison_frame
from rtcap.reports.content import Report
from rtcap.reports.gate import RESULTS_FILE
from rtcap.reports.page import md_table
from rtcap.reports import schema
from rtcap.reports.patterns import TITLE as PATTERNS_TITLE
from rtcap.reports.patterns import patterns_frame
from rtcap.reports.summary import Markdown, md_code, md_text
from rtcap.reports.thresholds import show_value
from rtcap.reports.wire import TITLE as WIRE_TITLE
from rtcap.reports.units import fmt_bytes, fmt_cpu, fmt_kib, fmt_num, transport_name
from rtcap.reports.wire import wire_numbers, wire_table

FORMAT_VERSION = 1
WITHIN_NOISE = ("_Within noise: the difference's 95% CI contains zero (fitted slopes, bytes) or the two runs' "
                "intervals overlap (p99: order statistics of the step's events; capacity: the step grid)._")
META_KEYS = ("name", "tool", "version", "git_sha", "host", "target", "transports", "steps", "hold_s", "slo",
             "start", "end", "notes")


def _clean(value: Any) -> Any:
    """Strict-JSON copy: NaN and infinities become null, numpy scalars plain numbers, tuples lists."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def model_parameters(p: Mapping[str, Any]) -> dict[str, Any]:
    """One transport's model in plain names: memory fit, CPU and wire bytes per event or request."""
    unit = "event" if p["unit"] == "message" else "request"
    mem, cpu, bw = p["memory"], p["cpu"], p["bandwidth"]
    out: dict[str, Any] = {"kind": p["kind"], "unit": unit}
    out["memory"] = mem if "why" in mem else {
        "slope_bytes_per_connection": mem["slope"], "intercept_bytes": mem["baseline"],
        "ci95_bytes": [mem["slope_lo"], mem["slope_hi"]], "r2": mem["r2"], "points": mem["points"],
        "stderr_bytes": mem["stderr"], "steps": mem["steps"]}
    out["cpu"] = cpu if "why" in cpu else {
        f"core_seconds_per_{unit}": cpu["per_unit"], "ci95": [cpu["per_unit_lo"], cpu["per_unit_hi"]],
        "idle_cores": cpu["idle_cores"], "r2": cpu["r2"], "points": cpu["points"], "stderr": cpu["stderr"],
        "against": cpu["x"], "steps": cpu["steps"]}
    out["bytes"] = bw if "why" in bw else {
        f"per_{unit}": bw["per_unit"], "per_step_min": bw["per_unit_lo"], "per_step_max": bw["per_unit_hi"],
        "stderr": bw["stderr"], "steps": bw["steps"]}
    if p.get("bytes_split"):
        split = p["bytes_split"]
        out["bytes"]["overhead_per_request"] = split["overhead_per_request"]
        out["bytes"]["payload_per_event"] = split["payload_per_event"]
    return out


def report_json(report: Report) -> dict[str, Any]:
    """Everything the page says, as data: per run the summary, model, sentences and trade-off."""
    runs = [{"name": r.name, "path": str(r.path), "meta": {k: r.meta[k] for k in META_KEYS if k in r.meta},
             "summary": r.summary, "target_samples": report.sampled_from[r.name],
             "model": {t: model_parameters(p) for t, p in report.params[r.name].items()},
             "headlines": [s.as_dict() for s in report.sentences[r.name]],
             "connections_vs_requests": report.tradeoffs[r.name]} for r in report.runs]
    wire = wire_numbers(report.steps).drop(columns=["is_baseline"])
    return _clean({"format": "rtcap-report", "format_version": FORMAT_VERSION, "runs": runs,
                   "wire": wire.astype(object).where(wire.notna(), None).to_dict(orient="records"),
                   "comparison": report.comparison})


def dumps_json(report: Report) -> str:
    """The JSON export as text (strict JSON: no NaN)."""
    return json.dumps(report_json(report), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def compact_frame(report: Report) -> pd.DataFrame:
    """One row per run and transport: the headline figures with units."""
    rows = []
    for r in report.runs:
        for t, s in ((r.summary or {}).get("transports") or {}).items():
            p = report.params[r.name].get(t)
            unit = "event" if p and p["unit"] == "message" else "request"
            cap = fmt_num(s.get("capacity_at_slo"))
            lo, hi = s.get("mem_per_conn_ci95") or (None, None)
            at = s.get("at_step") or {}
            cpu = p["cpu"] if p else {"why": ""}
            bw = p["bandwidth"] if p else {"why": ""}
            rows.append({
                "run": r.name, "transport": transport_name(t),
                "capacity at SLO": cap + (" (lower bound)" if s.get("capacity_is_lower_bound") and cap != "–"
                                          else ""),
                "memory/conn (95% CI)": "–" if s.get("mem_per_conn_bytes") is None else
                f"{fmt_kib(s['mem_per_conn_bytes'])} KiB ({fmt_kib(lo)}-{fmt_kib(hi)})",
                "delivery p99": "–" if (s.get("delivery_ms") or {}).get("p99") is None else
                f"{fmt_num(s['delivery_ms']['p99'])} ms at {fmt_num(at.get('connections'))} conns",
                "CPU": "–" if "why" in cpu else f"{fmt_cpu(cpu['per_unit'])} per {unit}",
                "wire bytes": "–" if "why" in bw else f"{fmt_bytes(bw['per_unit'])} per {unit}",
                "errors / lost": f"{fmt_num(s.get('errors'))} / {fmt_num(s.get('lost'))}"})
    frame = pd.DataFrame(rows)
    return frame.drop(columns="run") if len(report.runs) == 1 and not frame.empty else frame


def thresholds_markdown(report: Report) -> list[str]:
    """Lines of a "Thresholds" section from each run's thresholds.json (none when no run was gated)."""
    rows = []
    for r in report.runs:
        path = r.path / RESULTS_FILE
        if not path.is_file():
            continue
        for item in json.loads(path.read_text(encoding="utf-8")):
            percent = item["threshold"].rstrip().endswith("%")
            rows.append({"run": r.name, "threshold": md_code(item["threshold"]),
                         "observed": show_value(item.get("metric", ""), item.get("observed"), percent),
                         "verdict": "met" if item.get("ok") else Markdown("**FAILED**"), "why": item.get("detail", "")})
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    if len(report.runs) == 1:
        frame = frame.drop(columns="run")
    failed = sum(not r["verdict"] == "met" for r in rows)
    lead = f"{len(rows) - failed} of {len(rows)} met" + (f"; {failed} failed" if failed else "")
    aborted = [r.meta["aborted"] for r in report.runs if r.meta.get("aborted")]
    if aborted:
        lead += f"; the run was aborted early during {', '.join(a.get('transport', '?') for a in aborted)}"
    return ["### Thresholds", "", md_text(lead + "."), "", md_table(frame), ""]


def report_markdown(report: Report) -> str:
    """A short markdown summary: sentences, a compact table, the wire table, trade-off, differences, warnings."""
    several = len(report.runs) > 1
    names = {r.name: md_text(r.name) for r in report.runs}
    out = [f"## rtcap report: {', '.join(names.values())}", ""]
    for r in report.runs:
        prefix = f"**{names[r.name]}** · " if several else ""
        out += [f"- {prefix}{md_text(s.text())}" for s in report.sentences[r.name]]
        out.append(f"- {prefix}{md_text(report.sampled_from[r.name])}")
    out += ["", md_table(compact_frame(report)), ""]
    for r in report.runs:
        label = f"Connections vs requests{f' ({names[r.name]})' if several else ''}"
        out += [f"**{label}.** {md_text(report.tradeoffs[r.name]['sentence'])}", ""]
    out += thresholds_markdown(report)
    frame, notes = wire_table(report.steps)
    if not frame.empty:
        out += [f"### {WIRE_TITLE}", "", md_table(frame), ""]
        out += [f"_{md_text(n)}_" for n in notes] + ([""] if notes else [])
    pattern_frame = patterns_frame({r.name: r.summary or {} for r in report.runs})
    if not pattern_frame.empty:
        out += [f"### {PATTERNS_TITLE}", "", md_table(pattern_frame), ""]
    if report.comparison:
        out += [f"### Differences between runs (against {names[report.runs[0].name]})", "",
                md_table(comparison_frame(report.comparison)), "",
                WITHIN_NOISE, ""]
    warnings = [f"- {names[r.name] + ' · ' if several else ''}{md_text(t)}: {md_text(w)}" for r in report.runs
                for t, s in ((r.summary or {}).get("transports") or {}).items() for w in s.get("warnings") or []]
    warnings += [f"- {names[r.name] + ' · ' if several else ''}note: {md_text(n)}"
                 for r in report.runs for n in r.meta.get("notes") or []]
    if warnings:
        out += ["### Warnings", "", *warnings, ""]
    return "\n".join(out).rstrip("\n") + "\n"


SUMMARY_MD = schema.SUMMARY_MD_FILE
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
"""The file GitHub Actions shows as the job summary; other CI systems can point it anywhere."""


def publish_markdown(run_dir: Path, environ: Mapping[str, str]) -> list[Path]:
    """Write the run's markdown summary to RUN/summary.md and append it to $GITHUB_STEP_SUMMARY if set."""
    from rtcap.reports.content import build_report

    text = report_markdown(build_report([run_dir]))
    written = [run_dir / SUMMARY_MD]
    written[0].write_text(text, encoding="utf-8")
    if environ.get(STEP_SUMMARY_ENV):
        step_summary = Path(environ[STEP_SUMMARY_ENV])
        with step_summary.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")
        written.append(step_summary)
    return written
