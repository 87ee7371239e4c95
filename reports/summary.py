"""Build summary.json (per-transport headline numbers) from steps.csv and meta.json; write its text as markdown."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from rtcap.reports import model, wire
from rtcap.reports import slo as slo_rule
from rtcap.reports.flags import (GENERATOR_LAGGING, MEMORY_UNSETTLED, TARGET_FLAGS, distinct, has_flag,
                           split_flags, words)
from rtcap.reports.rundir import META_FILE, STEPS_FILE, SUMMARY_FILE, RunDirError, read_json, read_steps
from rtcap.reports.units import finite as _num
from rtcap.targets.transports import get

SLO_KEYS = ("delivery_p99_ms", "error_rate")
__all__ = ["Markdown", "build_summary", "check_slo", "md_code", "md_text", "summarize_transport",
           "transport_order", "write_summary"]


class Markdown(str):
    """Text already written as markdown (emphasis, code spans we add ourselves): md_text() keeps it as it is."""


# What markdown, or the HTML it may hold, could read as markup rather than text. `<` and `>` stay literal only
# in `<=` and `>=` before a space ("p99 <= 1,000 ms", "CPU >= 90%"), which open and close nothing whatever
# follows, and not at the start, where `>` begins a block quote; `&` only before a space. Pipes would split
# table cells, backticks open code, `[` links and images, line breaks start new blocks, and a backslash would
# escape what follows it.
_MD_SPECIAL = re.compile(r"^\s*>|[<>](?!=\s)|&(?!\s)|[|`\\\[]|\r\n?|\n")
_MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def _md_escape(match: re.Match[str]) -> str:
    text = match.group()
    if text[-1] in _MD_ENTITIES:  # a leading "  >" keeps its spaces
        return text[:-1] + _MD_ENTITIES[text[-1]]
    return " " if text in ("\r\n", "\r", "\n") else "\\" + text


def md_text(value: Any) -> str:
    """`value` as markdown text that renders as itself and nothing more.

    Transport names, notes, warnings, run names and threshold details can carry what a server or an adapter
    said; summary.md and CI job summaries are rendered as markdown with inline HTML, so that text must reach
    them as text. Every markdown writer goes through this one function (Markdown values pass unchanged).
    """
    if isinstance(value, Markdown):
        return value
    return _MD_SPECIAL.sub(_md_escape, str(value))


def md_code(value: Any) -> Markdown:
    """`value` as a code span for a table cell: literal inside, fenced past any backticks it holds."""
    text = re.sub(r"\r\n?|\n", " ", str(value)).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Markdown(f"{fence}{pad}{text}{pad}{fence}")


def _int(value: Any) -> int | None:
    """A rounded int or None."""
    f = _num(value)
    return None if f is None else int(round(f))


def _sum(col: pd.Series) -> int:
    """Integer sum that ignores unknown (NaN) cells."""
    return int(round(float(pd.to_numeric(col, errors="coerce").sum(skipna=True))))


def check_slo(meta: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Return meta["slo"], raising RunDirError if the keys the model needs are absent."""
    slo = meta.get("slo")
    if not isinstance(slo, dict):
        raise RunDirError(f"{path}: missing object 'slo'")
    bad = [k for k in SLO_KEYS if _num(slo.get(k)) is None]
    if bad:
        raise RunDirError(f"{path}: 'slo' lacks numeric key(s): {', '.join(bad)}")
    return dict(slo)


PATTERN_TOTALS = ("not_modified", "bytes_saved", "cache_hits", "cache_misses", "round_trips", "notifications",
                  "unanswered", "in_flight", "messages_sent", "messages_received")
"""Pattern counts summed over every step (errors such as unanswered requests count wherever they happened);
the other figures are rates and sizes read at the highest-load valid step, like rps and msgs_per_s."""


def pattern_figures(transport: str, steps: pd.DataFrame, valid: pd.DataFrame,
                    top_row: pd.Series | None) -> dict[str, Any]:
    """The figures of the patterns between polling and WebSockets that this transport measures and recorded.

    Round trips per event are weighted over the valid steps: sum(round_trips) / sum(delivered).
    """
    out: dict[str, Any] = {}
    record = get(transport)  # its record says which figures it measures (targets/transports.py)
    for name in record.pattern_figures if record is not None else ():
        if name == "round_trips_per_event":
            known = valid[valid["round_trips"].notna()] if "round_trips" in valid else valid.iloc[0:0]
            delivered = float(known["delivered"].sum())
            out[name] = _num(known["round_trips"].sum() / delivered) if delivered else None
        elif name not in steps or not steps[name].notna().any():
            continue  # not recorded (e.g. no cache header on the answers): unknown, not zero
        elif name in PATTERN_TOTALS:
            out[name] = _sum(steps[name])
        elif top_row is not None and pd.notna(top_row.get(name)):
            out[name] = _num(top_row[name])
    return out


def _step_warnings(steps: pd.DataFrame, slo: Mapping[str, Any]) -> list[str]:
    """Warnings about invalid or flagged steps."""
    out: list[str] = []
    invalid = steps[~steps["valid"]]
    if len(invalid):
        reasons = ", ".join(words(f, slo) for f in distinct(invalid["flags"])) or "reason not recorded"
        out.append(f"{len(invalid)} step{'s' * (len(invalid) != 1)} invalid: {reasons}")
    valid = steps[steps["valid"]]
    # memory_unsettled has its own warning from the memory fit, which says what was done about it.
    for flag in (f for f in distinct(valid["flags"]) if f != MEMORY_UNSETTLED):
        n = int(has_flag(valid, flag).sum())
        out.append(f"{n} valid step{'s' * (n != 1)} flagged {flag}: {words(flag, slo)}")
    return out


def _lag_warnings(steps: pd.DataFrame, slo: Mapping[str, Any]) -> list[str]:
    """One warning when the load generator lagged: those steps measured the generator, not the target."""
    lagging = steps[has_flag(steps, GENERATOR_LAGGING)]
    if lagging.empty:
        return []
    worst = _num(lagging["generator_lag_p99_ms"].max()) if "generator_lag_p99_ms" in lagging else None
    limit = _num(slo.get("generator_lag_p99_ms"))
    parts = ([f"timer lag p99 up to {worst:,.0f} ms"] if worst is not None else []) + (
        [f"limit {limit:,.0f} ms"] if limit is not None else [])
    how = f" ({', '.join(parts)})" if parts else ""
    n = len(lagging)
    return [f"load generator lagging at {n} step{'s' * (n != 1)}{how}: its own event loop was late, so "
            "latency there is the generator's; not counted as capacity (spread the load with --processes)"]


def _optional_sum(col: pd.Series) -> int | None:
    """Integer sum of a column an older run may lack entirely (all unknown -> None)."""
    values = pd.to_numeric(col, errors="coerce")
    return None if values.notna().sum() == 0 else _sum(values)


def _target_failed_above(steps: pd.DataFrame, users: int) -> bool:
    """True when a step above `users` was invalid through the target's fault (it died, froze, erred...):
    then the SLO did not hold at every step, whatever the valid steps say."""
    above = steps[pd.to_numeric(steps["users"], errors="coerce") > users]
    return any(set(split_flags(cell)) & TARGET_FLAGS for cell in above.get("flags", []))


def summarize_transport(steps: pd.DataFrame, slo: Mapping[str, Any]) -> dict[str, Any]:
    """Headline numbers and warnings for one transport's steps."""
    valid = steps[steps["valid"]]
    rss = model.memory_fit(steps, "rss_bytes")
    uss = model.memory_fit(steps, "uss_bytes")
    tcp = model.memory_fit(steps, "sockstat_tcp_mem_bytes")
    selection = model.select_fit_steps(steps, "rss_bytes")
    usable = int((selection.rows["connections"].notna() & selection.rows["rss_bytes"].notna()).sum())
    per_client = wire.transport_wire(steps)

    # "Highest load" is what was asked for (users); connections can be missing or short.
    top = valid.sort_values(["users", "connections", "step"], na_position="first")
    top_row = top.iloc[-1] if len(top) else None
    weighted = steps[(steps["delivered"] > 0) & steps["bytes_per_event"].notna()]
    delivered = float(weighted["delivered"].sum())
    cap_conns, cap_users = model.capacity_at_slo(steps, slo)

    out: dict[str, Any] = {
        "max_connections": _int(steps["connections"].max()),
        "mem_per_conn_bytes": None if rss is None else _num(rss.slope),
        "mem_per_conn_ci95": None if rss is None else [_num(rss.ci95[0]), _num(rss.ci95[1])],
        "mem_per_conn_r2": None if rss is None else _num(rss.r2),
        "mem_per_conn_uss_bytes": None if uss is None else _num(uss.slope),
        "mem_per_conn_uss_ci95": None if uss is None else [_num(uss.ci95[0]), _num(uss.ci95[1])],
        "kernel_tcp_mem_per_conn_bytes": None if tcp is None else _num(tcp.slope),
        "baseline_rss_bytes": None if rss is None else _num(rss.intercept),
        "fit_points": 0 if rss is None else rss.n,
        "delivery_ms": {q: None if top_row is None else _num(top_row[f"latency_{q}_ms"])
                        for q in ("p50", "p95", "p99")},
        "rps": None if top_row is None else _num(top_row["rps"]),
        "msgs_per_s": None if top_row is None else _num(top_row["msgs_per_s"]),
        "at_step": None if top_row is None else {
            "step": _int(top_row["step"]), "users": _int(top_row["users"]),
            "connections": _int(top_row["connections"])},
        "bytes_per_event": _num((weighted["bytes_per_event"] * weighted["delivered"]).sum() / delivered)
        if delivered > 0 else None,
        "errors": _sum(steps["errors"]),
        "lost": _sum(steps["lost"]),
        "duplicated": _sum(steps["duplicated"]),
        "reordered": _sum(steps["reordered"]),
        "capacity_at_slo": cap_conns,
        "capacity_at_slo_users": cap_users,
        # True when the SLO held at the highest valid step: the real limit lies beyond the sweep.
        "capacity_is_lower_bound": bool(cap_users is not None and top_row is not None
                                        and cap_users >= int(top_row["users"])
                                        and not _target_failed_above(steps, cap_users)),
        "steps": int(len(steps)),
        "valid_steps": int(len(valid)),
        # Medians over valid steps, per client (Locust user) over 5 minutes: see reports/wire.py.
        **{k: per_client[k] for k in ("bytes_per_client_5min", "overhead_per_client_5min",
                                      "payload_per_client_5min")},
        "missed_ticks": _optional_sum(steps["missed_ticks"]) if "missed_ticks" in steps else None,
        "generator_lag_p99_ms": _num(steps["generator_lag_p99_ms"].max())
        if "generator_lag_p99_ms" in steps else None,
        "patterns": pattern_figures(str(steps["transport"].iloc[0]) if len(steps) else "", steps, valid, top_row),
    }

    warnings = (model.fit_warnings(rss, usable) + model.settle_warnings(selection)
                + _step_warnings(steps, slo) + _lag_warnings(steps, slo))
    if steps.empty:
        # A transport listed in meta.json that recorded nothing (e.g. it crashed) stays visible.
        warnings = ["no steps recorded in steps.csv"]
    elif len(valid) == 0:
        warnings.append("no valid steps: no latency, throughput or capacity figures")
    elif cap_conns is None and cap_users is None:
        warnings.append("no valid step met the SLO")
    out["warnings"] = warnings
    return out


def transport_order(meta: Mapping[str, Any], steps: pd.DataFrame) -> list[str]:
    """Transports as listed in meta.json, then any others in steps.csv order."""
    listed = [str(t) for t in meta.get("transports") or []]
    return listed + [t for t in dict.fromkeys(steps["transport"]) if t not in listed]


def _poll_interval(meta: Mapping[str, Any]) -> float | None:
    return _num((meta.get("options") or {}).get("poll_interval"))


def build_summary(meta: Mapping[str, Any], steps: pd.DataFrame, meta_path: Path = Path(META_FILE)
                  ) -> dict[str, Any]:
    """Compose the summary dict for one run from its meta and steps."""
    slo = check_slo(meta, meta_path)
    return {
        "name": meta.get("name") or meta_path.parent.name,
        "slo": slo,
        "transports": {t: {**summarize_transport(steps[steps["transport"] == t], slo_rule.for_transport(slo, t)),
                           "slo_delivery_p99_ms": slo_rule.delivery_limit_ms(slo, t),
                           "slo_basis": slo_rule.basis(slo, t, _poll_interval(meta))}
                       for t in transport_order(meta, steps)},
    }


def write_summary(run_dir: Path | str) -> dict[str, Any]:
    """Read steps.csv and meta.json in `run_dir`, write summary.json, return the dict."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a run directory (does not exist or is not a directory)")
    meta_path = run_dir / META_FILE
    summary = build_summary(read_json(meta_path), read_steps(run_dir / STEPS_FILE), meta_path)
    # allow_nan=False guarantees strict JSON for other tools; write-then-rename avoids torn files.
    text = json.dumps(summary, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    tmp = run_dir / f".{SUMMARY_FILE}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, run_dir / SUMMARY_FILE)
    return summary
