"""Load rtcap run directories (meta.json, steps.csv, samples.csv) into pandas frames.

The run directory is the contract between the `run` stage and everything that
reads results; this module only reads it and validates what the report relies on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

META_FILE = "meta.json"
STEPS_FILE = "steps.csv"
SAMPLES_FILE = "samples.csv"
SUMMARY_FILE = "summary.json"

STEP_TEXT_COLUMNS = ("transport", "flags")
STEP_NUMERIC_COLUMNS = (
    "step", "users", "connections", "t_start", "t_end", "duration_s", "requests", "rps",
    "delivered", "msgs_per_s", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
    "latency_max_ms", "latency_mean_ms", "connect_p50_ms", "connect_p99_ms", "errors",
    "error_rate", "lost", "duplicated", "reordered", "bytes_received", "bytes_sent",
    "bytes_per_event", "rss_bytes", "uss_bytes", "cpu_percent", "sockstat_tcp_mem_bytes",
    "generator_cpu_percent",
)
STEP_COLUMNS = STEP_TEXT_COLUMNS + STEP_NUMERIC_COLUMNS + ("valid",)
# Added to steps.csv later: older runs lack them, so they are filled with NaN ("" for settled)
# on load and every consumer treats them as unknown.
STEP_OPTIONAL_NUMERIC_COLUMNS = (
    "payload_bytes", "bytes_per_client_5min", "payload_per_client_5min", "overhead_per_client_5min",
    "missed_ticks", "request_p50_ms", "request_p99_ms", "generator_lag_p99_ms",
    "generator_lag_max_ms", "settle_s",
    # The patterns between polling and WebSockets (loadtests/collect.py PATTERN_COLUMNS, WS_PATTERN_COLUMNS).
    "not_modified", "bytes_saved", "cache_hits", "cache_misses", "cache_hit_rps", "handler_rps", "cache_age_mean_s",
    "round_trips", "round_trips_per_event", "notifications", "unanswered", "in_flight", "messages_sent",
    "messages_received", "msgs_in_per_s", "msgs_out_per_s", "room_size", "fanout",
)
STEP_OPTIONAL_TEXT_COLUMNS = ("settled",)

SAMPLE_TEXT_COLUMNS = ("transport", "role", "phase")
SAMPLE_NUMERIC_COLUMNS = (
    "t", "elapsed_s", "pid", "rss_bytes", "uss_bytes", "cpu_percent", "num_fds",
    "tcp_established", "sockstat_tcp_inuse", "sockstat_tcp_mem_bytes", "step",
)
SAMPLE_COLUMNS = SAMPLE_TEXT_COLUMNS + SAMPLE_NUMERIC_COLUMNS

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


class RunDirError(Exception):
    """A run directory or one of its files is missing or malformed."""


@dataclass
class Run:
    """One loaded run directory."""

    name: str
    path: Path
    meta: dict[str, Any]
    steps: pd.DataFrame
    samples: pd.DataFrame
    summary: dict[str, Any] | None


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object from `path`, raising RunDirError if missing or not an object."""
    if not path.is_file():
        raise RunDirError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_csv(path: Path, columns: Sequence[str], text: Sequence[str],
              optional_text: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV, check required columns and coerce numbers (empty cells become NaN)."""
    if not path.is_file():
        raise RunDirError(f"{path}: file not found")
    try:
        # Text columns stay text so "" and "poll" never turn into floats.
        df = pd.read_csv(path, dtype={c: str for c in (*text, *optional_text)})
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise RunDirError(f"{path}: cannot parse CSV ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise RunDirError(f"{path}: empty file, expected a header row") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RunDirError(f"{path}: missing column(s): {', '.join(missing)}")
    for col in columns:
        if col in text:
            df[col] = df[col].fillna("").astype(str)
        elif col != "valid":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df


def _parse_valid(values: pd.Series, path: Path) -> pd.Series:
    """Map the `valid` column to bool; an empty cell means no reason to distrust the step."""
    def one(v: object) -> bool:
        if isinstance(v, bool):
            return v
        text = "" if pd.isna(v) else str(v).strip().lower()
        if text in _TRUE or text == "":
            return True
        if text in _FALSE:
            return False
        raise RunDirError(f"{path}: column valid has non-boolean value {v!r}")
    return values.map(one).astype(bool)


def _add_optional(df: pd.DataFrame) -> pd.DataFrame:
    """Coerce the optional steps.csv columns, adding absent ones as unknown."""
    for col in STEP_OPTIONAL_NUMERIC_COLUMNS:
        df[col] = (pd.to_numeric(df[col], errors="coerce").astype(float) if col in df
                   else float("nan"))
    for col in STEP_OPTIONAL_TEXT_COLUMNS:
        df[col] = df[col].fillna("").astype(str).str.strip().str.lower() if col in df else ""
    return df


def read_steps(path: Path) -> pd.DataFrame:
    """Read and validate a steps.csv file; optional columns an older run lacks are added empty."""
    df = _add_optional(_read_csv(path, STEP_COLUMNS, STEP_TEXT_COLUMNS, STEP_OPTIONAL_TEXT_COLUMNS))
    df["valid"] = _parse_valid(df["valid"], path)
    if df["transport"].eq("").any():
        raise RunDirError(f"{path}: empty transport in row(s) {list(df.index[df['transport'].eq('')])}")
    return df


def read_samples(path: Path) -> pd.DataFrame:
    """Read and validate a samples.csv file; a missing file yields an empty frame."""
    # Resource samples only feed the timeline figure, so a run without them still reports.
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype=str if c in SAMPLE_TEXT_COLUMNS else float)
                             for c in SAMPLE_COLUMNS})
    return _read_csv(path, SAMPLE_COLUMNS, SAMPLE_TEXT_COLUMNS)


def load_run(path: Path | str) -> Run:
    """Load one run directory; raises RunDirError naming the offending file."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: not a run directory (does not exist or is not a directory)")
    meta = read_json(path / META_FILE)
    steps = read_steps(path / STEPS_FILE)
    samples = read_samples(path / SAMPLES_FILE)
    summary_path = path / SUMMARY_FILE
    summary = read_json(summary_path) if summary_path.exists() else None
    name = str(meta.get("name") or path.name)
    return Run(name=name, path=path, meta=meta, steps=steps, samples=samples, summary=summary)


def _unique_names(runs: Sequence[Run]) -> list[str]:
    """Label runs by name, falling back to the directory and a counter so overlays stay apart."""
    labels: list[str] = []
    for run in runs:
        label = run.name
        if label in labels:
            label = f"{run.name} ({run.path.name})"
        n = 2
        while label in labels:
            label, n = f"{run.name} #{n}", n + 1
        labels.append(label)
    return labels


def load_runs(paths: Iterable[Path | str]) -> tuple[pd.DataFrame, pd.DataFrame, list[Run]]:
    """Load several runs; return (steps_long, samples_long, runs) with a `run` column added."""
    runs = [load_run(p) for p in paths]
    if not runs:
        raise RunDirError("no run directories given")
    labels = _unique_names(runs)
    for run, label in zip(runs, labels):
        run.name = label
    steps = pd.concat([r.steps.assign(run=r.name) for r in runs], ignore_index=True)
    samples = pd.concat([r.samples.assign(run=r.name) for r in runs], ignore_index=True)
    return steps, samples, runs
