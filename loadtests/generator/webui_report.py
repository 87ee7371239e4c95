"""The web UI's HTML report: when a test run from Locust's web UI stops, what it recorded becomes a run
directory and a self-contained report.html, linked from the "Download Data" tab (REPORT_PATH).

The run directory is the one `rtcap run` writes (steps.csv, samples.csv, meta.json, summary.json), under
`--rtcap-record DIR/webui-<time>/`, so `rtcap report` and `rtcap plan` read it too. With the step shape
(`-f locustfile.py,loadtests/generator/stepload.py`) every finished step is a row, as in `rtcap run`; without it the
whole test is one row per transport. With --target-pid the target's samples feed the memory figures.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.runners import WorkerRunner

from rtcap.loadtests import options as declared
from rtcap.loadtests.generator import abort, gate_hooks, hooks
from rtcap.loadtests.generator.options import Settings
from rtcap.loadtests.run.collect import GENERATOR, label_samples, step_row
from rtcap.loadtests.run.sampler import sample_rows
from rtcap.reports import schema

logger = logging.getLogger(__name__)
REPORT_PATH = "/rtcap/report"
LINK_TITLE = "rtcap capacity report (HTML, once a test has stopped)"
SLO = {"delivery_p99_ms": declared.default("slo_p99_ms"), "error_rate": declared.default("slo_error_rate")}
"""The SLO `rtcap run` uses by default; the capacity figures of a web-UI test are read against it."""

_reports: dict[int, Path] = {}
"""The latest report of each environment (by id)."""


def latest_report(environment: Any) -> Path | None:
    """The report.html of this environment's last stopped test, if one was written."""
    return _reports.get(id(environment))


def write_run_directory(environment: Any, run_dir: Path, samples: list[dict[str, Any]]) -> Path:
    """Turn the recorder's rows (and `samples` of the target) into a run directory; return it."""
    recorder = hooks.recorder_of(environment)
    rows = recorder.rows() if recorder is not None else []
    transports = sorted({r["transport"] for r in rows} - {GENERATOR})
    windows = abort.finished_windows(environment, math.inf)
    steps = []
    for transport in transports:
        for window in windows or [gate_hooks.whole_test_window(rows, transport, steady=True)]:
            steps.append(step_row(transport, window, rows, samples))
    run_dir.mkdir(parents=True, exist_ok=True)
    labelled = []
    for transport in transports:
        mine = [r for r in steps if r["transport"] == transport]
        labelled += label_samples([{**s, "transport": transport} for s in samples], mine)
    schema.write_steps(run_dir, steps)
    schema.write_samples(run_dir, labelled)
    options = environment.parsed_options
    t0 = min((r["t"] for r in rows), default=time.time())
    pid = Settings.of(environment).target_pid
    schema.write_meta(run_dir, schema.build_meta(
        name=run_dir.name, transports=transports, steps=sorted({int(s["users"]) for s in steps}), hold_s=None,
        target={"kind": "web UI", "url": environment.host or getattr(options, "host", ""), "pid": pid},
        options={o.setting: getattr(options, o.setting, None) for o in declared.LOCUST if o.web_ui},
        slo=SLO, start=datetime.fromtimestamp(t0, timezone.utc).isoformat(), end=datetime.now(timezone.utc).isoformat(),
        notes=["recorded from the Locust web UI" + ("" if windows else ": no step shape, so the whole test is one "
               "step per transport, from when it held the most connections (add loadtests/generator/stepload.py to -f "
               "for capacity curves)")] + ([] if samples else ["no --target-pid: the target's memory and CPU were not "
                                                               "sampled"])))
    return run_dir


def build_report(environment: Any, samples: list[dict[str, Any]]) -> Path | None:
    """Write the run directory and report.html of the test that just stopped; None if nothing was measured."""
    from rtcap.reports.html import render_report
    from rtcap.reports.summary import write_summary

    hooks.wait_finished(environment)
    recorder = hooks.recorder_of(environment)
    if recorder is None or not any(r["transport"] != GENERATOR for r in recorder.rows()):
        return None
    record = Path(environment.parsed_options.rtcap_record)
    run_dir = write_run_directory(environment, record / datetime.now().strftime("webui-%Y%m%d-%H%M%S"), samples)
    write_summary(run_dir)
    report = render_report([run_dir], run_dir / schema.REPORT_FILE)
    _reports[id(environment)] = report
    logger.info("rtcap: HTML report of this test: %s (also at %s)", report, REPORT_PATH)
    return report


def _build_safely(environment: Any, samples: list[dict[str, Any]]) -> None:
    try:
        build_report(environment, samples)
    except Exception:  # noqa: BLE001  (a report that cannot be built must not take the web UI down)
        logger.exception("rtcap: could not build the HTML report of this test")


def install(environment: Any, web_ui: Any, target_samples: Any) -> None:
    """Link the report from the web UI's Download Data tab, serve it, and build it each time a test stops.

    `target_samples()` returns the target's samples so far (a list of rtcap.loadtests.run.sampler.Sample).
    """
    links = web_ui.template_args.setdefault("extended_csv_files", [])
    links.append({"href": "." + REPORT_PATH, "title": LINK_TITLE})

    @web_ui.app.route(REPORT_PATH)
    @web_ui.auth_required_if_enabled  # with --web-login the report is as private as Locust's own pages
    def rtcap_report() -> Any:
        from flask import Response, send_file

        report = latest_report(environment)
        if report is None or not report.is_file():
            return Response("No rtcap report yet: it is written when a test stops (and measured something).\n",
                            status=404, mimetype="text/plain")
        return send_file(report, mimetype="text/html")

    @events.test_stop.add_listener
    def on_test_stop(environment: Any = environment, **_kwargs: Any) -> None:
        if isinstance(environment.runner, WorkerRunner) or getattr(environment, "web_ui", None) is None:
            return
        # In its own greenlet: the rows are complete only after every test_stop listener ran.
        gevent.spawn(_build_safely, environment, sample_rows(target_samples()))
