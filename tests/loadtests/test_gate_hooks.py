"""Thresholds in plain headless Locust: checked over the whole test when it quits, deciding the exit code."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.loadtests.locust_run import ROOT, start_locust


def test_met_and_missed_thresholds_set_the_exit_code_and_write_junit(reference_url: str, tmp_path: Path) -> None:
    met = start_locust(reference_url, "SSEUser", 4, 4, tmp_path / "met", "--threshold", "sse.delivery.p99<5s",
                       "--threshold", "sse.errors<1%", "--threshold", "sse.msgs_per_s>10")
    assert met.wait(90) == 0, (tmp_path / "met" / "locust.log").read_text()
    missed = start_locust(reference_url, "SSEUser", 4, 4, tmp_path / "missed", "--threshold", "sse.delivery.p99<1us",
                          "--threshold", "sse.lost<1", "--threshold", "sse.mem_per_conn<1MiB")
    assert missed.wait(90) == 1
    log = (tmp_path / "missed" / "locust.log").read_text()
    assert "FAILED: sse.delivery.p99<1us" in log and "thresholds: 1 of 3 met" in log
    results = {r["threshold"]: r for r in json.loads((tmp_path / "missed" / "thresholds.json").read_text())}
    assert results["sse.lost<1"]["ok"] and results["sse.lost<1"]["observed"] == 0
    # Plain Locust samples no target process: a memory threshold cannot be checked, so it fails as unavailable.
    assert not results["sse.mem_per_conn<1MiB"]["ok"] and "unavailable" in results["sse.mem_per_conn<1MiB"]["detail"]
    suite = ET.parse(tmp_path / "missed" / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "3" and suite.get("failures") == "2"


def test_a_bad_threshold_stops_locust_before_it_starts(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--headless",
                           "--host", "http://127.0.0.1:9", "-u", "1", "-t", "1s", "--threshold", "sse.delivery.p99<1"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode != 0
    assert "a latency needs a time unit" in done.stderr + done.stdout
