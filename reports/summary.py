"""Build summary.json (per-transport headline numbers) from steps.csv and meta.json."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from reports import model
from reports.rundir import META_FILE, STEPS_FILE, SUMMARY_FILE, RunDirError, read_json, read_steps

SLO_KEYS = ("delivery_p99_ms", "error_rate")
FLAG_WORDS = {
    "generator_saturated": "load generator saturated",
    "connections_short": "target held fewer connections than users",
}


def _num(value: Any) -> float | None:
    """A finite float or None, so NaN never reaches JSON."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


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


def _flags(steps: pd.DataFrame) -> list[str]:
    """Distinct flags across the given steps, in order of first appearance."""
    seen: dict[str, None] = {}
    for cell in steps["flags"]:
        for flag in str(cell).split(";"):
            if flag.strip():
                seen.setdefault(flag.strip(), None)
    return list(seen)


def _step_warnings(steps: pd.DataFrame) -> list[str]:
    """Warnings about invalid or flagged steps."""
    out: list[str] = []
    invalid = steps[~steps["valid"]]
    if len(invalid):
        reasons = ", ".join(FLAG_WORDS.get(f, f) for f in _flags(invalid)) or "reason not recorded"
        out.append(f"{len(invalid)} step{'s' * (len(invalid) != 1)} invalid: {reasons}")
    for flag in _flags(steps[steps["valid"]]):
        n = int(steps[steps["valid"]]["flags"].str.split(";").map(lambda fs: flag in fs).sum())
        out.append(f"{n} valid step{'s' * (n != 1)} flagged {flag}: {FLAG_WORDS.get(flag, flag)}")
    return out


def summarize_transport(steps: pd.DataFrame, slo: Mapping[str, Any]) -> dict[str, Any]:
    """Headline numbers and warnings for one transport's steps."""
    valid = steps[steps["valid"]]
    rss = model.memory_fit(steps, "rss_bytes")
    uss = model.memory_fit(steps, "uss_bytes")
    tcp = model.memory_fit(steps, "sockstat_tcp_mem_bytes")
    usable = int((valid["connections"].notna() & valid["rss_bytes"].notna()).sum())

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
                                        and cap_users >= int(top_row["users"])),
        "steps": int(len(steps)),
        "valid_steps": int(len(valid)),
    }

    warnings = model.fit_warnings(rss, usable) + _step_warnings(steps)
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


def build_summary(meta: Mapping[str, Any], steps: pd.DataFrame, meta_path: Path = Path(META_FILE)
                  ) -> dict[str, Any]:
    """Compose the summary dict for one run from its meta and steps."""
    slo = check_slo(meta, meta_path)
    return {
        "name": meta.get("name") or meta_path.parent.name,
        "slo": slo,
        "transports": {t: summarize_transport(steps[steps["transport"] == t], slo)
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
