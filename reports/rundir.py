"""Load rtcap run directories (meta.json, steps.csv, samples.csv) into pandas frames.

The run directory is the contract between the `run` stage and everything that
reads results; this module only reads it and validates what the report relies on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rtcap.reports import schema

# The format is written down in reports/schema.py; this module reads it.
_STEP_REQUIRED = schema.columns(schema.STEP_SCHEMA, since_first=True)
_STEP_TEXT = schema.columns(schema.STEP_SCHEMA, since_first=True, kind="text")
# Added to steps.csv later: older runs lack them, so they are filled with NaN ("" for text) on load and every
# consumer treats them as unknown.
_STEP_OPTIONAL_NUMERIC = schema.columns(schema.STEP_SCHEMA, since_first=False, kind="number")
_STEP_OPTIONAL_TEXT = schema.columns(schema.STEP_SCHEMA, since_first=False, kind="text")
_STEP_KEYS = schema.columns(schema.STEP_SCHEMA, key=True)
_SAMPLE_REQUIRED = schema.columns(schema.SAMPLE_SCHEMA, since_first=True)
_SAMPLE_TEXT = schema.columns(schema.SAMPLE_SCHEMA, since_first=True, kind="text")
_SAMPLE_OPTIONAL_NUMERIC = schema.columns(schema.SAMPLE_SCHEMA, since_first=False, kind="number")
_SAMPLE_OPTIONAL_TEXT = schema.columns(schema.SAMPLE_SCHEMA, since_first=False, kind="text")
META_FILE, STEPS_FILE, SAMPLES_FILE, SUMMARY_FILE = (schema.META_FILE, schema.STEPS_FILE, schema.SAMPLES_FILE,
                                                     schema.SUMMARY_FILE)
META_SHAPE, SUMMARY_SHAPE = schema.META_SHAPE, schema.SUMMARY_SHAPE

_NAN_WORDS = {"nan", "-nan", "+nan"}

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
    except json.JSONDecodeError as exc:
        # A file cut off while being written ends mid-value: say where, so it is not mistaken for a typo.
        raise RunDirError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
                          "the file is truncated or damaged") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: cannot read ({exc})") from exc
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def check_complete(path: Path, content: str) -> None:
    """Refuse a CSV that was cut off: a row with more or fewer cells than its header, or no final line end.

    pandas fills a short last row with NaN and reads a number cut in half as a smaller number, so a file
    truncated by a crash or a full disk would otherwise report half a step as if it were measured. Every
    writer of a run directory ends each line (csv and pandas do), so a missing final line end means the
    last line may be missing its end too.
    """
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = next(reader, None)
        width = len(header or ())
        for row in reader:
            if row and len(row) != width:
                raise RunDirError(f"{path}: line {reader.line_num}: {len(row)} cells where the header has {width}; "
                                  "the file is truncated or damaged")
    except csv.Error as exc:
        raise RunDirError(f"{path}: line {reader.line_num}: cannot parse CSV ({exc})") from exc
    if content and not content.endswith(("\n", "\r")):
        raise RunDirError(f"{path}: line {reader.line_num}: no line end: the file is truncated "
                          "(its last line may be incomplete)")


def check_shape(path: Path, data: dict[str, Any], shape: dict[str, type]) -> None:
    """Refuse JSON whose documented keys have the wrong type (a report would fail on them half-way)."""
    names = {dict: "an object", list: "a list"}
    for key, kind in shape.items():
        value = data.get(key)
        if value is not None and not isinstance(value, kind):
            raise RunDirError(f"{path}: {key!r} must be {names.get(kind, kind.__name__)}, got {type(value).__name__}")
    transports = data.get("transports")
    if shape is SUMMARY_SHAPE and transports:
        bad = [str(t) for t, figures in transports.items() if not isinstance(figures, dict)]
        if bad:
            raise RunDirError(f"{path}: transports {', '.join(bad)}: each must be an object of figures")


def _check_numbers(path: Path, df: pd.DataFrame, columns: Sequence[str], keys: Sequence[str] = ()) -> None:
    """Refuse a cell that is neither empty nor a number, and an empty `keys` cell: damage, not an unknown value."""
    for col in columns:
        if col not in df:
            continue
        raw = df[col]
        number = pd.to_numeric(raw, errors="coerce")
        text = raw.astype(str).str.strip()
        bad = number.isna() & raw.notna() & text.ne("") & ~text.str.lower().isin(_NAN_WORDS)
        if col in keys:
            bad |= number.isna()
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            value = "" if pd.isna(raw.iloc[i]) else raw.iloc[i]
            raise RunDirError(f"{path}: line {i + 2}: column {col} has {value!r}, not a number")


def _read_csv(path: Path, columns: Sequence[str], text: Sequence[str], optional_text: Sequence[str] = (),
              optional_numeric: Sequence[str] = (), keys: Sequence[str] = ()) -> pd.DataFrame:
    """Read a complete CSV, check required columns and coerce numbers (empty cells become NaN).

    Every cell of a known numeric column must be empty or a number, and every `keys` cell a number.
    """
    if not path.is_file():
        raise RunDirError(f"{path}: file not found")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: cannot read ({exc})") from exc
    if not content.strip():
        raise RunDirError(f"{path}: empty file, expected a header row")
    check_complete(path, content)
    try:
        # Text columns stay text so "" and "poll" never turn into floats.
        df = pd.read_csv(io.StringIO(content), dtype={c: str for c in (*text, *optional_text)})
    except pd.errors.ParserError as exc:
        raise RunDirError(f"{path}: cannot parse CSV ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise RunDirError(f"{path}: empty file, expected a header row") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RunDirError(f"{path}: missing column(s): {', '.join(missing)}")
    numeric = [c for c in (*columns, *optional_numeric) if c not in (*text, "valid")]
    _check_numbers(path, df, numeric, keys)
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


def _add_optional(df: pd.DataFrame, numeric: Sequence[str] = _STEP_OPTIONAL_NUMERIC,
                  text: Sequence[str] = _STEP_OPTIONAL_TEXT, lower: bool = True) -> pd.DataFrame:
    """Coerce the optional columns (steps.csv's by default), adding absent ones as unknown."""
    for col in numeric:
        df[col] = (pd.to_numeric(df[col], errors="coerce").astype(float) if col in df
                   else float("nan"))
    for col in text:
        values = df[col].fillna("").astype(str).str.strip() if col in df else ""
        df[col] = values.str.lower() if lower and col in df else values
    return df


def read_steps(path: Path) -> pd.DataFrame:
    """Read and validate a steps.csv file; optional columns an older run lacks are added empty."""
    df = _add_optional(_read_csv(path, _STEP_REQUIRED, _STEP_TEXT, _STEP_OPTIONAL_TEXT,
                                 _STEP_OPTIONAL_NUMERIC, _STEP_KEYS))
    df["valid"] = _parse_valid(df["valid"], path)
    if df["transport"].eq("").any():
        raise RunDirError(f"{path}: empty transport in row(s) {list(df.index[df['transport'].eq('')])}")
    return df


def read_samples(path: Path) -> pd.DataFrame:
    """Read and validate a samples.csv file; a missing file yields an empty frame."""
    # Resource samples only feed the timeline figure, so a run without them still reports.
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype=str if c in _SAMPLE_TEXT + _SAMPLE_OPTIONAL_TEXT else float)
                             for c in schema.SAMPLE_COLUMNS})
    # Columns added later (tcp_outgoing, state, source) are unknown in older runs; sources keep their case (URLs).
    return _add_optional(_read_csv(path, _SAMPLE_REQUIRED, _SAMPLE_TEXT, _SAMPLE_OPTIONAL_TEXT, _SAMPLE_OPTIONAL_NUMERIC),
                         _SAMPLE_OPTIONAL_NUMERIC, _SAMPLE_OPTIONAL_TEXT, lower=False)


def load_run(path: Path | str) -> Run:
    """Load one run directory; raises RunDirError naming the offending file."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: not a run directory (does not exist or is not a directory)")
    meta = read_json(path / META_FILE)
    check_shape(path / META_FILE, meta, META_SHAPE)
    steps = read_steps(path / STEPS_FILE)
    samples = read_samples(path / SAMPLES_FILE)
    summary_path = path / SUMMARY_FILE
    summary = read_json(summary_path) if summary_path.exists() else None
    if summary is not None:
        check_shape(summary_path, summary, SUMMARY_SHAPE)
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
