"""Thresholds as a CI gate: gather them (flags, environment, config file), check a run, write JUnit XML.

Sources, all added together: `--threshold EXPR` (repeatable), RTCAP_THRESHOLDS (expressions separated by
`;` or newlines), and `thresholds = [...]` in ./rtcap.toml or under `[tool.rtcap]` in ./pyproject.toml.
"""

from __future__ import annotations

import json
import os
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from rtcap.reports.rundir import read_steps
from rtcap.reports.schema import JUNIT_FILE, STEPS_FILE, SUMMARY_FILE
from rtcap.reports.schema import THRESHOLDS_FILE as RESULTS_FILE
from rtcap.reports.thresholds import (Outcome, Threshold, ThresholdError, evaluate, parse_threshold, parse_thresholds,
                               show_value)

ENV_VAR = "RTCAP_THRESHOLDS"


def configured_thresholds(directory: Path = Path(".")) -> list[str]:
    """Expressions from ./rtcap.toml (`thresholds = [...]`) or ./pyproject.toml (`[tool.rtcap] thresholds`)."""
    for name, path in (("rtcap.toml", ("thresholds",)), ("pyproject.toml", ("tool", "rtcap", "thresholds"))):
        file = directory / name
        if not file.is_file():
            continue
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ThresholdError(f"{file}: not valid TOML: {error}") from None
        value: object = data
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ThresholdError(f"{file}: {'.'.join(path)} must be a list of strings like \"sse.delivery.p99<250ms\"")
        return list(value)
    return []


def gather(flags: Iterable[str] | None, environ: Mapping[str, str] = os.environ,
           directory: Path = Path(".")) -> list[Threshold]:
    """Every threshold asked for, parsed (ThresholdError lists every bad one); one check per distinct text."""
    texts = [t.strip() for t in flags or []]
    texts += [t.strip() for t in environ.get(ENV_VAR, "").replace("\n", ";").split(";") if t.strip()]
    texts += [t.strip() for t in configured_thresholds(directory)]
    return parse_thresholds(dict.fromkeys(texts))


def check_thresholds_rows(thresholds: list[Threshold], summary: Mapping[str, object], steps: pd.DataFrame,
                          out_dir: Path, say: object = print, verdicts: Iterable[Outcome] = ()) -> list[Outcome]:
    """Evaluate, print one line per threshold, and write thresholds.json and junit.xml into `out_dir`.

    `verdicts` are misses found while the test ran (abort-early); they stand for their thresholds, since the
    step that missed may be cut short or absent from the final figures.
    """
    early = {o.threshold.text: o for o in verdicts}
    outcomes = [early.get(o.threshold.text, o) for o in evaluate(thresholds, summary, steps)]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_results(out_dir, outcomes)
    for outcome in outcomes:
        say(f"threshold {describe(outcome)}")  # type: ignore[operator]
    say(f"thresholds: {sum(o.ok for o in outcomes)} of {len(outcomes)} met (JUnit: {out_dir / JUNIT_FILE})")  # type: ignore[operator]
    return outcomes


def check_run(run_dir: Path, thresholds: list[Threshold], say: object = print,
              verdicts: Iterable[Outcome] = ()) -> list[Outcome]:
    """Evaluate thresholds against a finished run directory; the results go next to its files.

    A miss found while the run was aborted stands only if the finished run misses it too: the step that
    tripped it may have been judged invalid afterwards (its generator saturated), and then it does not count.
    """
    summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    steps_path = run_dir / STEPS_FILE
    steps = read_steps(steps_path) if steps_path.exists() and steps_path.stat().st_size else pd.DataFrame()
    missed = {o.threshold.text for o in evaluate(thresholds, summary, steps) if not o.ok}
    confirmed = [v for v in verdicts if v.threshold.text in missed]
    for dropped in (v for v in verdicts if v.threshold.text not in missed):
        say(f"note: {dropped.threshold.text} aborted the run on a step the finished run does not count "  # type: ignore[operator]
            "(invalid); the sweep was still cut short")
    return check_thresholds_rows(thresholds, summary, steps, run_dir, say, confirmed)


def early_verdicts(aborted: Mapping[str, object]) -> list[Outcome]:
    """The misses an aborted test wrote (loadtests/generator/abort.py's aborted.json) as outcomes."""
    found = []
    for item in aborted.get("thresholds", []):  # type: ignore[union-attr]
        threshold = parse_threshold(item["threshold"])
        found.append(Outcome(threshold, item.get("observed"), False, f"aborted early: {item.get('detail', '')}"))
    return found


def junit_xml(outcomes: list[Outcome], suite: str = "rtcap thresholds") -> str:
    """JUnit XML: one test case per threshold, a failure element for each one not met."""
    failures = sum(not o.ok for o in outcomes)
    root = ET.Element("testsuites", name=suite, tests=str(len(outcomes)), failures=str(failures))
    cases = ET.SubElement(root, "testsuite", name=suite, tests=str(len(outcomes)), failures=str(failures), errors="0")
    for outcome in outcomes:
        case = ET.SubElement(cases, "testcase", classname=f"rtcap.{outcome.threshold.transport}",
                             name=outcome.threshold.text)
        if not outcome.ok:
            failure = ET.SubElement(case, "failure", message=describe(outcome))
            failure.text = outcome.detail
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def describe(outcome: Outcome) -> str:
    """One line: the expression, the observed value in the metric's base unit, and the verdict."""
    observed = show_value(outcome.threshold.metric, outcome.observed, outcome.threshold.percent)
    verdict = "ok" if outcome.ok else "FAILED"
    return f"{verdict}: {outcome.threshold.text} (observed {observed}; {outcome.detail})"


def write_results(run_dir: Path, outcomes: list[Outcome]) -> None:
    """thresholds.json and junit.xml in the run directory."""
    (run_dir / RESULTS_FILE).write_text(json.dumps([
        {"threshold": o.threshold.text, "transport": o.threshold.transport, "metric": o.threshold.metric,
         "op": o.threshold.op, "limit": o.threshold.limit, "observed": o.observed, "ok": o.ok, "detail": o.detail}
        for o in outcomes], indent=2), encoding="utf-8")
    (run_dir / JUNIT_FILE).write_text(junit_xml(outcomes), encoding="utf-8")
