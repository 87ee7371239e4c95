"""Everything a report says, computed once from the run directories; html, json and md render it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rtcap.reports.schema import META_FILE
from rtcap.reports.compare import compare_runs
from rtcap.reports.headline import Sentence, sentence
from rtcap.reports.params import poll_interval, run_params, update_rate
from rtcap.reports.rundir import Run, load_runs
from rtcap.reports.summary import build_summary, write_summary
from rtcap.reports.tradeoff import tradeoff


@dataclass
class Report:
    """Loaded runs and what the report derives from them, per run name."""

    runs: list[Run]
    steps: pd.DataFrame
    samples: pd.DataFrame
    params: dict[str, dict[str, dict[str, Any]]]
    sentences: dict[str, list[Sentence]]
    tradeoffs: dict[str, dict[str, Any]]
    comparison: list[dict[str, Any]]
    sampled_from: dict[str, str]
    """Per run, one sentence saying where the target's samples came from (target_source_sentence)."""

    @property
    def slo(self) -> dict[str, Any]:
        """The first run's SLO: it words the bands and limits when runs are overlaid."""
        first = self.runs[0]
        return dict((first.summary or {}).get("slo") or first.meta.get("slo") or {})


def ensure_summaries(runs: Sequence[Run]) -> None:
    """Compute summary.json for runs that lack one (in memory if the directory is read-only)."""
    for run in runs:
        if run.summary is None:
            try:
                run.summary = write_summary(run.path)
            except OSError:
                run.summary = build_summary(run.meta, run.steps, run.path / META_FILE)


def run_sentences(run: Run, params: dict[str, dict[str, Any]]) -> list[Sentence]:
    """One headline sentence per transport of a run."""
    summary = run.summary or {}
    slo = summary.get("slo") or run.meta.get("slo") or {}
    interval = poll_interval(run)
    return [sentence(run.name, t, s, slo, run.steps[run.steps["transport"] == t], params.get(t), interval)
            for t, s in (summary.get("transports") or {}).items()]


def target_source_sentence(run: Run) -> str:
    """Where the target's memory and CPU samples came from, from samples.csv's `source` column: "psutil" (the
    host rtcap ran on), "agent:<url>" (`rtcap agent` on the target's host), "prometheus:<url>"."""
    target = run.samples[run.samples["role"] == "target"]
    if target.empty:
        return "Target not sampled: no memory or CPU samples of it."
    sources = [source for source in dict.fromkeys(target["source"]) if source]
    if not sources:
        return "Target samples: source not recorded (written before rtcap recorded it)."
    return f"Target samples from {', '.join(sources)}."


def build_report(run_dirs: Sequence[Path | str]) -> Report:
    """Load the runs (RunDirError when one is malformed) and derive every section's content."""
    steps, samples, runs = load_runs(run_dirs)
    ensure_summaries(runs)
    params = {r.name: run_params(r) for r in runs}
    return Report(
        runs=runs, steps=steps, samples=samples, params=params,
        sentences={r.name: run_sentences(r, params[r.name]) for r in runs},
        tradeoffs={r.name: tradeoff(r.name, params[r.name], poll_interval(r), update_rate(r)) for r in runs},
        comparison=compare_runs(runs, params) if len(runs) > 1 else [],
        sampled_from={r.name: target_source_sentence(r) for r in runs})
