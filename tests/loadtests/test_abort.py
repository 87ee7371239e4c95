"""Abort early: a test stops as soon as a threshold can no longer be met, keeps what it measured, exits 1."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import launch_reference
from tests.loadtests.locust_run import ROOT, start_locust


def test_plain_locust_stops_once_a_count_is_over_its_bound(tmp_path: Path) -> None:
    target = launch_reference("--drop-every", "4", rate=20)
    try:
        # -t 120s: only the abort can end this test inside the wait below.
        locust = start_locust(target.adapter.base_url, "SSEUser", 3, 120, tmp_path, "--threshold", "sse.lost<1",
                              "--threshold", "sse.delivery.p99<1us", "--abort-early")
        assert locust.wait(60) == 1, (tmp_path / "locust.log").read_text()
    finally:
        target.stop()
    log = (tmp_path / "locust.log").read_text()
    assert "aborting early: sse.lost<1 can no longer be met" in log
    aborted = json.loads((tmp_path / "aborted.json").read_text())
    # Over one growing window a latency percentile can still fall: only the count may abort the test.
    assert [item["threshold"] for item in aborted["thresholds"]] == ["sse.lost<1"]
    results = {r["threshold"]: r for r in json.loads((tmp_path / "thresholds.json").read_text())}
    assert not results["sse.lost<1"]["ok"] and results["sse.lost<1"]["observed"] >= 1
    assert results["sse.lost<1"]["detail"].startswith("aborted early")


def test_rtcap_run_stops_the_sweep_after_the_step_that_missed(tmp_path: Path) -> None:
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("earlier job output\n")
    done = subprocess.run(
        [sys.executable, "-m", "rtcap.loadtests.cli", "run", "--transports", "sse,ws", "--steps", "20,40,60,80",
         "--hold", "3", "--settle", "1", "--settle-max", "5", "--rate", "10", "--threshold", "sse.delivery.p99<1us",
         "--threshold", "sse.lost<1", "--abort-early", "--out-dir", str(tmp_path), "--name", "a", "--no-report"],
        capture_output=True, text=True, cwd=ROOT, timeout=180, env={**_env(), "GITHUB_STEP_SUMMARY": str(step_summary)})
    assert done.returncode == 1, done.stdout + done.stderr
    run = tmp_path / "a"
    meta = json.loads((run / "meta.json").read_text())
    assert meta["aborted"]["transport"] == "sse"
    assert any("transports not run: ws" in note for note in meta["notes"])
    with (run / "steps.csv").open() as handle:
        steps = list(csv.DictReader(handle))
    # What was measured is kept: the first SSE step already missed, so nothing after it ran.
    assert [(s["transport"], s["users"]) for s in steps] == [("sse", "20")]
    results = {r["threshold"]: r for r in json.loads((run / "thresholds.json").read_text())}
    assert not results["sse.delivery.p99<1us"]["ok"] and results["sse.lost<1"]["ok"]
    summary = (run / "summary.md").read_text()
    assert "| `sse.delivery.p99<1us` |" in summary and "**FAILED**" in summary and "aborted early" in summary
    assert step_summary.read_text() == "earlier job output\n" + summary + "\n"


def test_abort_early_without_a_threshold_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "rtcap.loadtests.cli", "run", "--abort-early", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, env=_env())
    assert done.returncode == 2 and "--abort-early needs at least one threshold" in done.stderr
    assert not any(tmp_path.iterdir())


def _env() -> dict[str, str]:
    import os

    # No thresholds from the environment of whoever runs the tests.
    return {k: v for k, v in os.environ.items() if k not in ("RTCAP_THRESHOLDS", "RTCAP_ABORT_EARLY")}


def test_a_sweep_aborted_before_any_step_still_writes_its_report_and_verdicts(tmp_path: Path) -> None:
    # errors < 0 can never hold: the first check aborts, before the first step has finished.
    done = subprocess.run(
        [sys.executable, "-m", "rtcap.loadtests.cli", "run", "--transports", "poll,ws", "--steps", "20,40", "--hold", "4",
         "--settle", "1", "--settle-max", "0", "--threshold", "poll.errors<0", "--abort-early",
         "--out-dir", str(tmp_path), "--name", "early"],
        capture_output=True, text=True, cwd=ROOT, timeout=180, env=_env())
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    run = tmp_path / "early"
    for name in ("report.html", "summary.md", "thresholds.json", "junit.xml"):
        assert (run / name).is_file(), name
    assert "transports not run: ws" in " ".join(json.loads((run / "meta.json").read_text())["notes"])
    assert "WebSocket: not measured" in (run / "summary.md").read_text()
