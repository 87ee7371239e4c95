"""Thresholds as a CI gate: sources, JUnit XML, and the exit codes of real short runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rtcap.loadtests.cli import main
from rtcap.reports.gate import configured_thresholds, gather, junit_xml
from rtcap.reports.thresholds import Outcome, ThresholdError, parse_threshold


def test_thresholds_come_from_flags_environment_and_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.rtcap]\nthresholds = ["poll.rps>=500"]\n')
    found = gather(["sse.delivery.p99<250ms"], {"RTCAP_THRESHOLDS": "ws.errors<0.1%; ws.lost<1"}, tmp_path)
    assert [t.text for t in found] == ["sse.delivery.p99<250ms", "ws.errors<0.1%", "ws.lost<1", "poll.rps>=500"]
    (tmp_path / "rtcap.toml").write_text('thresholds = ["sse.capacity>=100"]\n')
    assert configured_thresholds(tmp_path) == ["sse.capacity>=100"]  # rtcap.toml comes first
    (tmp_path / "rtcap.toml").write_text('thresholds = "sse.capacity>=100"\n')
    with pytest.raises(ThresholdError, match="list of strings"):
        configured_thresholds(tmp_path)


def test_junit_has_one_case_per_threshold_and_a_failure_for_each_miss() -> None:
    outcomes = [Outcome(parse_threshold("sse.delivery.p99<250ms"), 80.0, True, "worst p99"),
                Outcome(parse_threshold("ws.errors<0.1%"), 0.02, False, "worst step's error rate")]
    root = ET.fromstring(junit_xml(outcomes))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["sse.delivery.p99<250ms", "ws.errors<0.1%"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None and "FAILED: ws.errors<0.1%" in failure.get("message", "")


SHORT = ["run", "--transports", "sse", "--steps", "5,10", "--hold", "3", "--settle", "1", "--settle-max", "0",
         "--rate", "5", "--no-report"]


def test_a_bad_expression_stops_before_any_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*SHORT, "--out-dir", str(tmp_path), "--name", "bad", "--threshold", "sse.latency<1ms"])
    assert code == 2 and not (tmp_path / "bad").exists()
    assert "unknown metric 'latency'" in capsys.readouterr().err


def test_exit_codes_of_real_runs_met_and_missed(tmp_path: Path) -> None:
    met = main([*SHORT, "--out-dir", str(tmp_path), "--name", "met", "--threshold", "sse.delivery.p99<5s",
                "--threshold", "sse.errors<1%", "--threshold", "sse.connections>=10"])
    assert met == 0
    missed = main([*SHORT, "--out-dir", str(tmp_path), "--name", "missed", "--threshold", "sse.delivery.p99<1us",
                   "--threshold", "sse.lost<1"])
    assert missed == 1
    results = {r["threshold"]: r["ok"] for r in json.loads((tmp_path / "missed" / "thresholds.json").read_text())}
    assert results == {"sse.delivery.p99<1us": False, "sse.lost<1": True}
    suite = ET.parse(tmp_path / "missed" / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
