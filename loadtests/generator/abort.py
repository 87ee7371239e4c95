"""Abort early (`--abort-early`): stop a test as soon as one of its thresholds can no longer be met.

Checked every CHECK_INTERVAL_S on the process that holds the whole test's timeline (the master in a
distributed run, else the only process). Only a miss that more data cannot mend stops a test
(rtcap.reports.thresholds.final_once_missed): an upper bound on a count (errors, lost, duplicated, reordered)
and, when the step shape measures separate steps, the worst finished step's latency percentile or error
rate. Such a step is judged once its last second's rows can have arrived. The reason is logged and written
to DIR/aborted.json (`--rtcap-record DIR`), the test stops (Locust quits when headless), and the threshold
check at quit fails, so the exit code is the thresholds-failed one.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import gevent
import pandas as pd
from locust import events
from locust.runners import WORKER_REPORT_INTERVAL, WorkerRunner

from rtcap.loadtests.generator import gate_hooks, hooks
from rtcap.loadtests.run.collect import GENERATOR, step_row
from rtcap.reports.schema import ABORTED_FILE
from rtcap.reports.thresholds import COUNTS, Outcome, Threshold, doomed

logger = logging.getLogger(__name__)
CHECK_INTERVAL_S = 1.0
LOCAL_ROWS_DELAY_S = 1.5
"""How long after a step ends its last second's rows are in the recorder of a single process..."""
MASTER_ROWS_DELAY_S = WORKER_REPORT_INTERVAL + 1.5
"""...and in the master's, which gets the workers' rows in their periodic reports."""

_watchers: dict[int, gevent.Greenlet] = {}

def finished_windows(environment: Any, before: float) -> list[dict[str, Any]]:
    """The step shape's measurement windows that ended before `before` ([] without a step shape)."""
    staircase = getattr(getattr(environment, "shape_class", None), "staircase", None)
    windows = [w.to_json() for w in getattr(staircase, "windows", [])]
    return [w for w in windows if w["t_end"] <= before]


def misses(thresholds: list[Threshold], rows: list[dict[str, Any]], windows: list[dict[str, Any]],
           judged: dict[tuple[str, int], dict[str, Any]] | None = None) -> list[Outcome]:
    """The thresholds that cannot be met any more, from the rows and finished step windows so far.

    This runs every second on the load generator, so it merges no histogram twice: the counts come from plain
    sums, and a finished step's row (its histograms merged once) is kept in `judged`, since it never changes.
    """
    transports = sorted({r["transport"] for r in rows} - {GENERATOR})
    if not transports:
        return []
    summary = {"transports": {t: {k: sum(r.get(k, 0) for r in rows if r["transport"] == t) for k in COUNTS}
                              for t in transports}}
    if not windows:
        return doomed(thresholds, summary, pd.DataFrame(columns=["transport", "valid"]), per_step=False)
    judged = {} if judged is None else judged
    for t in transports:
        for w in windows:
            if (t, w["step"]) not in judged:
                judged[(t, w["step"])] = step_row(t, w, rows, [])
    per_step = pd.DataFrame([judged[(t, w["step"])] for t in transports for w in windows])
    return doomed(thresholds, summary, per_step, per_step=True)


def _stop(environment: Any, found: list[Outcome]) -> None:
    outcomes = [replace(o, detail=f"aborted early: {o.detail}") for o in found]
    gate_hooks.set_aborted(environment, outcomes)
    for outcome in found:
        logger.error("rtcap: aborting early: %s can no longer be met (observed %s: %s)", outcome.threshold.text,
                     f"{outcome.observed:g}", outcome.detail)
    record = getattr(environment.parsed_options, "rtcap_record", "")
    if record:
        Path(record).mkdir(parents=True, exist_ok=True)
        (Path(record) / ABORTED_FILE).write_text(json.dumps({
            "t": time.time(),
            "thresholds": [{"threshold": o.threshold.text, "observed": o.observed, "detail": o.detail}
                           for o in found],
        }, indent=2))
    if getattr(environment.parsed_options, "headless", False):
        environment.runner.quit()
    else:
        environment.runner.stop()  # the web UI stays up, showing why in its log and Capacity tab


def _watch(environment: Any, thresholds: list[Threshold], delay: float) -> None:
    judged: dict[tuple[str, int], dict[str, Any]] = {}
    while True:
        gevent.sleep(CHECK_INTERVAL_S)
        recorder = hooks.recorder_of(environment)
        if recorder is None:
            continue
        found = misses(thresholds, recorder.rows(), finished_windows(environment, time.time() - delay), judged)
        if found:
            _stop(environment, found)
            return


@events.test_start.add_listener
def start_watching(environment: Any, **_kwargs: Any) -> None:
    """Start checking once a second, if --abort-early and thresholds were given (not on a worker)."""
    options = getattr(environment, "parsed_options", None)
    thresholds = gate_hooks.thresholds_of(environment)
    if not getattr(options, "abort_early", False) or not thresholds or isinstance(environment.runner, WorkerRunner):
        return
    gate_hooks.set_aborted(environment, [])
    delay = LOCAL_ROWS_DELAY_S if environment.runner.__class__.__name__ == "LocalRunner" else MASTER_ROWS_DELAY_S
    _watchers[id(environment)] = gevent.spawn(_watch, environment, thresholds, delay)


@events.test_stop.add_listener
def stop_watching(environment: Any, **_kwargs: Any) -> None:
    """Stop checking when the test stops."""
    watcher = _watchers.pop(id(environment), None)
    if watcher is not None and watcher is not gevent.getcurrent():
        watcher.kill(block=False)
