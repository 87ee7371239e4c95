"""`rtcap run --scenario`: a seed article's claim measured end to end, and the presets' bookkeeping."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rtcap.loadtests.cli import SCENARIO_NAMES, main
from rtcap.loadtests.run.scenarios import SCENARIOS
from rtcap.reports.claims import JUDGES

ROOT = Path(__file__).resolve().parents[2]


def test_every_scenario_has_a_judge_and_a_name_on_the_command_line() -> None:
    assert set(SCENARIO_NAMES) == set(SCENARIOS) == set(JUDGES)
    for scenario in SCENARIOS.values():
        assert scenario.claim and scenario.source.startswith("seeds/") and scenario.arms


def test_the_five_second_cache_claim_is_measured(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rtcap.loadtests.cli", "run", "--scenario", "cache-5s", "--steps", "30", "--hold", "9",
         "--settle", "1", "--settle-max", "0", "--out-dir", str(tmp_path), "--name", "c", "--no-report"],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    root = tmp_path / "c"
    verdict = json.loads((root / "scenario.json").read_text())
    assert verdict["claim"] == SCENARIOS["cache-5s"].claim
    assert verdict["arms"]["cache-5s"]["server_args"] == ["--cache-ttl", "5"]
    plain, cached = verdict["figures"]["handler_rps"]
    # 30 viewers polling every second: 30 handler runs/s without the cache, about one per 5 s with it.
    assert 25 < plain < 35 and 0 < cached < 1 and verdict["figures"]["handler_reduction"] > 25
    rps = verdict["figures"]["rps"]
    assert abs(rps[0] - rps[1]) < 5  # the cache answers as many requests: only the handler is spared
    p50 = verdict["figures"]["latency_p50_ms"]
    assert p50[1] > p50[0] + 500  # answers up to 5 s old: staleness the viewers see
    summary = (root / "summary.md").read_text()
    assert SCENARIOS["cache-5s"].claim in summary and "handler runs/s" in summary
    for arm in ("no-cache", "cache-5s"):  # each arm is an ordinary run directory
        assert (root / arm / "steps.csv").is_file() and (root / arm / "summary.json").is_file()


def test_a_scenario_refuses_options_of_a_single_run(tmp_path: Path) -> None:
    assert main(["run", "--scenario", "signalling", "--transports", "ws", "--out-dir", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())


def test_a_scenario_that_starts_its_own_servers_refuses_host(tmp_path: Path) -> None:
    code = main(["run", "--scenario", "cache-5s", "--host", "http://127.0.0.1:9", "--out-dir", str(tmp_path)])
    assert code == 2 and not any(tmp_path.iterdir())
