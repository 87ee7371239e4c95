"""The run directory's format, written down once: its files, the columns of steps.csv and samples.csv with
their types, the shape of meta.json and summary.json, and the one builder and writers of meta.json and the
CSV files.

The run directory is the contract between what measures (`rtcap run`, the Locust web UI's recording) and
what reads (reports, thresholds, the planner, other tools). Every writer and reader takes names, columns and
shapes from here, so a column added in one place cannot be missing in another. Standard library only: the
orchestrating process and the generator import it without pandas or plotly.

Columns marked `since_first=False` were added after the first format: run directories written before lack
them, and readers fill them as unknown (NaN, or "" for text), so old runs still render.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# Files of a run directory.
META_FILE = "meta.json"
STEPS_FILE = "steps.csv"
SAMPLES_FILE = "samples.csv"
SUMMARY_FILE = "summary.json"
SUMMARY_MD_FILE = "summary.md"
REPORT_FILE = "report.html"
SCENARIO_FILE = "scenario.json"
"""A scenario's verdict, in the scenario's directory above its arms' run directories."""
OUTAGES_FILE = "outages.jsonl"
"""Broker outages injected on purpose during a run (loadtests/run/outage.py), with what the clients saw."""
THRESHOLDS_FILE = "thresholds.json"
JUNIT_FILE = "junit.xml"
TARGET_LOG_FILE = "target.log"
"""What a server rtcap started wrote (stdout and stderr)."""

# Files of one transport's record (what Locust and the orchestrator wrote while it ran).
TIMELINE_GLOB = "timeline*.jsonl"
"""The clients' per-second rows, one file per generator process (loadtests/generator/timeline.py)."""
WINDOWS_FILE = "windows.jsonl"
"""The step shape's measurement windows."""
ABORTED_FILE = "aborted.json"
"""Which thresholds stopped the test early (--abort-early)."""
HEALTH_FILE = "health.jsonl"
PUBLISHES_FILE = "publishes.jsonl"
TARGET_LIVE_FILE = "target_live.jsonl"
"""The target's memory samples as they are taken, for the step shape's settle rule."""

Kind = Literal["text", "number", "bool"]


@dataclass(frozen=True)
class Column:
    """One column of a CSV file of the run directory."""

    name: str
    kind: Kind = "number"
    since_first: bool = False
    """In every run directory ever written (else older ones lack it and readers fill it as unknown)."""
    key: bool = False
    """Identifies a row: an empty cell is a damaged file, not an unknown value."""


def _cols(names: str, **kwargs: Any) -> tuple[Column, ...]:
    return tuple(Column(name, **kwargs) for name in names.split())


PATTERN_COLUMNS = tuple(c.name for c in _cols(
    "not_modified bytes_saved cache_hits cache_misses cache_hit_rps handler_rps cache_age_mean_s"))
"""Conditional polling and a server-side cache (loadtests/run/collect.py, loadtests/transports/answers.py)."""
WS_PATTERN_COLUMNS = tuple(c.name for c in _cols(
    "round_trips round_trips_per_event notifications unanswered in_flight messages_sent messages_received "
    "msgs_in_per_s msgs_out_per_s room_size fanout"))
"""The WebSocket patterns: signalling, request/response (rpc, rest) and presence."""
LIVENESS_COLUMNS = ("published", "publish_errors", "publish_p99_ms", "publish_error", "health_failures",
                    "seq_resets", "generator_errors", "exceptions", "exception_names", "tcp_outgoing")
"""What was seen of the target's liveness, the publisher and the generator's own errors."""
_TEXT_LIVENESS = {"publish_error", "exception_names"}

STEP_SCHEMA: tuple[Column, ...] = (
    Column("transport", "text", since_first=True),
    *_cols("step users", since_first=True, key=True),
    *_cols("connections t_start t_end duration_s requests rps delivered msgs_per_s latency_p50_ms latency_p95_ms "
           "latency_p99_ms latency_max_ms latency_mean_ms connect_p50_ms connect_p99_ms errors error_rate lost "
           "duplicated reordered bytes_received bytes_sent bytes_per_event", since_first=True),
    *_cols("payload_bytes bytes_per_client_5min payload_per_client_5min overhead_per_client_5min missed_ticks "
           "request_p50_ms request_p99_ms"),
    *_cols("rss_bytes uss_bytes cpu_percent sockstat_tcp_mem_bytes generator_cpu_percent", since_first=True),
    *_cols("generator_lag_p99_ms generator_lag_max_ms settle_s"),
    Column("settled", "text"),
    Column("flags", "text", since_first=True),
    Column("valid", "bool", since_first=True),
    *(Column(name) for name in PATTERN_COLUMNS + WS_PATTERN_COLUMNS),
    *(Column(name, "text" if name in _TEXT_LIVENESS else "number") for name in LIVENESS_COLUMNS),
)
"""steps.csv: one row per (transport, step), in the order the file's columns are written."""

SAMPLE_SCHEMA: tuple[Column, ...] = (
    *_cols("t elapsed_s", since_first=True),
    *_cols("transport role", kind="text", since_first=True),
    *_cols("pid rss_bytes uss_bytes cpu_percent num_fds tcp_established sockstat_tcp_inuse sockstat_tcp_mem_bytes "
           "step", since_first=True),
    Column("phase", "text", since_first=True),
    Column("tcp_outgoing"),
    Column("state", "text"),
    Column("source", "text"),
)
"""samples.csv: one row per sample of a process (the target's, the generator's)."""

TARGET_ROLE = "target"
"""samples.csv `role` of the target's summed sample: every process the adapter's `process.scope` names."""
MEMBER_ROLES = ("supervisor", "worker", "broker")
"""What one process of a multi-process target is. Beside the summed `target` row, each member gets its own row
with role `target:<member>` (member_role) and its pid: the process that started the others, a worker serving
clients, a message broker (redis-server) fanning events out to the workers."""


def member_role(member: str) -> str:
    """samples.csv `role` of one member's own sample: "target:worker", "target:broker", "target:supervisor"."""
    return f"{TARGET_ROLE}:{member}"


STEP_COLUMNS: tuple[str, ...] = tuple(c.name for c in STEP_SCHEMA)
SAMPLE_COLUMNS: tuple[str, ...] = tuple(c.name for c in SAMPLE_SCHEMA)

META_SHAPE: dict[str, type] = {"transports": list, "steps": list, "options": dict, "target": dict, "notes": list,
                               "slo": dict, "settle": dict, "host": dict, "aborted": dict}
"""meta.json: a key that is present must have this type (absent or null is allowed)."""
SUMMARY_SHAPE: dict[str, type] = {"transports": dict, "slo": dict}


def columns(schema: Iterable[Column], *, kind: Kind | None = None, since_first: bool | None = None,
            key: bool | None = None) -> tuple[str, ...]:
    """Names of the columns of `schema` with the given properties (None: either)."""
    return tuple(c.name for c in schema if (kind is None or c.kind == kind)
                 and (since_first is None or c.since_first == since_first) and (key is None or c.key == key))


def host_facts() -> dict[str, Any]:
    """The machine the load came from."""
    return {"hostname": socket.gethostname(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def build_meta(*, name: str, transports: list[str], steps: list[int], hold_s: float | None, target: dict[str, Any],
               options: Mapping[str, Any], slo: dict[str, Any], start: str, end: str | None, notes: list[str],
               settle: dict[str, Any] | None = None, git_sha: str | None = None) -> dict[str, Any]:
    """meta.json of a run: what it was asked to do, against what, on which machine, and when."""
    from rtcap.loadtests import __version__

    return {
        "tool": "rtcap", "version": __version__, "git_sha": git_sha, "name": name, "host": host_facts(),
        "target": target, "transports": transports, "steps": steps, "hold_s": hold_s, "settle": settle,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()},
        "slo": slo, "start": start, "end": end, "notes": notes,
    }


def write_meta(run_dir: Path, meta: dict[str, Any]) -> None:
    """Write meta.json atomically."""
    _replace(run_dir / META_FILE, json.dumps(meta, indent=2))


def write_csv(path: Path, columns: Iterable[str], rows: list[dict[str, Any]]) -> None:
    """Write `rows` as CSV with `columns` (unknown values empty), atomically."""
    columns = list(columns)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: ("" if row.get(k) is None else row.get(k)) for k in columns} for row in rows)
    tmp.replace(path)  # atomic: a crash never leaves a half-written file behind


def write_steps(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """steps.csv."""
    write_csv(run_dir / STEPS_FILE, STEP_COLUMNS, rows)


def write_samples(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """samples.csv."""
    write_csv(run_dir / SAMPLES_FILE, SAMPLE_COLUMNS, rows)


def _replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
