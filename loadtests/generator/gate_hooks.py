"""Thresholds for plain Locust: `locust -f locustfile.py --headless --threshold "sse.delivery.p99<250ms"`.

The expressions (and RTCAP_THRESHOLDS, rtcap.toml, [tool.rtcap]) are parsed when Locust starts, so a typo
stops it at once. When Locust quits, the process that holds the whole test's timeline (the master in a
distributed run, which has every worker's rows merged; else the only process) checks them over the whole
test, prints the verdicts, writes thresholds.json and junit.xml next to the timeline, and sets the exit
code: 0 all met, 1 one missed, 3 nothing was measured (the run itself failed: target unreachable...).
Figures that need the target's process (memory per connection, capacity) are not measured by plain
Locust: thresholds on them fail as unavailable; use `rtcap run` for those.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from locust import events
from locust.runners import WorkerRunner

from rtcap.loadtests.generator import hooks
from rtcap.loadtests.run.collect import GENERATOR, step_row
from rtcap.reports.gate import check_thresholds_rows
from rtcap.reports.thresholds import Outcome, Threshold, ThresholdError

logger = logging.getLogger(__name__)
RUN_FAILED = 3
GATE_ENV = "RTCAP_GATE"
"""Set by `rtcap run` for the Locust it starts: "off" (no thresholds), or "abort" (parse them for
--abort-early only: `rtcap run` checks them itself on the whole run directory)."""
_parsed: dict[int, list[Threshold]] = {}
_aborted: dict[int, list[Outcome]] = {}
"""The misses that stopped each environment's test early (loadtests/generator/abort.py sets them): kept here,
where the final verdict is made, so abort.py depends on this module and not the other way round."""


def set_aborted(environment: Any, outcomes: list[Outcome]) -> None:
    """Record the misses that aborted `environment`'s test ([]: it was not aborted)."""
    _aborted[id(environment)] = outcomes


def aborted(environment: Any) -> list[Outcome]:
    """The misses that aborted this environment's test ([] when it was not aborted)."""
    return _aborted.get(id(environment), [])


@events.init.add_listener
def parse_on_init(environment: Any, **_kwargs: Any) -> None:
    """Parse every threshold before the test starts; make sure a timeline is recorded to check them on."""
    from rtcap.reports.gate import gather

    if os.environ.get(GATE_ENV) == "off":
        return  # `rtcap run` checks its thresholds itself, on the whole run directory
    options = getattr(environment, "parsed_options", None)
    try:
        thresholds = gather(getattr(options, "threshold", None))
    except ThresholdError as error:
        raise SystemExit(f"rtcap: {error}") from None
    if not thresholds or options is None:
        return
    _parsed[id(environment)] = thresholds
    if not getattr(options, "rtcap_record", ""):
        options.rtcap_record = tempfile.mkdtemp(prefix="rtcap-thresholds-")


def thresholds_of(environment: Any) -> list[Threshold]:
    """The thresholds parsed for this environment's test ([] when none)."""
    return _parsed.get(id(environment), [])


def whole_test_window(rows: list[dict[str, Any]], transport: str, steady: bool = False) -> dict[str, Any]:
    """One measurement window over every second `transport` has in the timeline `rows` (`steady`: from the
    first second that held the most connections, so the ramp up is left out)."""
    seconds = [r for r in rows if r["transport"] == transport]
    most = max(r.get("open_connections", 0) for r in seconds)
    start = min(r["t"] for r in seconds if r.get("open_connections", 0) == most or not steady)
    return {"step": 0, "users": most or 1, "t_start": start, "t_end": max(r["t"] for r in seconds) + 1}


def whole_test_figures(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], pd.DataFrame]:
    """A summary and one steps row per transport, over every second of the timeline (one window)."""
    transports = sorted({r["transport"] for r in rows} - {GENERATOR})
    summary: dict[str, Any] = {"transports": {}}
    steps = []
    for transport in transports:
        row = step_row(transport, whole_test_window(rows, transport), rows, [])
        # One window for the whole test: the start-up's lag spike must not void it (the lag is shown apart).
        row["valid"] = True
        steps.append(row)
        summary["transports"][transport] = {
            "max_connections": row["connections"], "rps": row["rps"], "msgs_per_s": row["msgs_per_s"],
            "bytes_per_event": row["bytes_per_event"], "errors": row["errors"], "lost": row["lost"],
            "duplicated": row["duplicated"], "reordered": row["reordered"],
        }
    return summary, pd.DataFrame(steps)


def live_outcomes(environment: Any) -> list[Any]:
    """The thresholds checked over the test so far (for the web UI's Capacity tab); [] when none."""
    from rtcap.reports.thresholds import evaluate

    thresholds = _parsed.get(id(environment))
    recorder = hooks.recorder_of(environment)
    rows = recorder.rows() if recorder is not None else []
    if not thresholds or not any(r["transport"] != GENERATOR for r in rows):
        return []
    summary, steps = whole_test_figures(rows)
    return evaluate(thresholds, summary, steps)


@events.quitting.add_listener
def check_on_quit(environment: Any, **_kwargs: Any) -> None:
    """Check the thresholds over the whole test and set Locust's exit code."""
    thresholds = _parsed.pop(id(environment), None)
    if not thresholds or isinstance(environment.runner, WorkerRunner) or os.environ.get(GATE_ENV) == "abort":
        return
    hooks.stop_on_quit(environment)  # the master waits for the workers' last rows here
    recorder = hooks.recorder_of(environment)
    rows = recorder.rows() if recorder is not None else []
    if not any(r["transport"] != GENERATOR for r in rows):
        logger.error("rtcap: thresholds not checked: nothing was measured")
        environment.process_exit_code = RUN_FAILED
        return
    summary, steps = whole_test_figures(rows)
    record = Path(environment.parsed_options.rtcap_record)
    # A step that missed for good stops the test; over the whole test the same figure may read as met.
    outcomes = check_thresholds_rows(thresholds, summary, steps, record, verdicts=aborted(environment))
    environment.process_exit_code = 0 if all(o.ok for o in outcomes) else 1
