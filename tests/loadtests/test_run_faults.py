"""`rtcap run` under faults of the target: killed, frozen, failing publishes. Real processes throughout.

Each test starts `rtcap run` as a user would, reads its progress lines as they come, injects the fault when
the first step has finished, and checks that the run says what happened instead of reporting a pass.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from rtcap.loadtests.run.observe import listening_pid

RTCAP = [sys.executable, "-m", "rtcap.loadtests.cli", "run"]
SERVER = Path(__file__).parent / "faults" / "server.py"
DEADLINE_S = 150.0


class Run:
    """An `rtcap run` child whose output lines are read as they come."""

    def __init__(self, args: list[str], out_dir: Path) -> None:
        self.dir = out_dir / "r"
        self.lines: list[str] = []
        report = [] if "--report" in args else ["--no-report"]
        args = [a for a in args if a != "--report"]
        self.process = subprocess.Popen([*RTCAP, *args, "--out-dir", str(out_dir), "--name", "r", *report],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        cwd=Path(__file__).parents[2])

    def until(self, pattern: str) -> re.Match:
        """Read output lines until one matches `pattern` (fails if the run ends first)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"run ended before {pattern!r}:\n{''.join(self.lines)}")

    def finish(self) -> int:
        """Read the rest of the output and wait for the exit code."""
        assert self.process.stdout is not None
        self.lines += self.process.stdout.readlines()
        return self.process.wait(timeout=DEADLINE_S)

    def steps(self) -> list[dict[str, str]]:
        with (self.dir / "steps.csv").open(encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    def json(self, name: str) -> dict:
        return json.loads((self.dir / name).read_text(encoding="utf-8"))


@pytest.fixture
def run_factory(tmp_path: Path) -> Iterator:
    runs: list[Run] = []

    def start(*args: str) -> Run:
        runs.append(Run(list(args), tmp_path))
        return runs[-1]

    yield start
    for run in runs:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def target_pid(run: Run) -> int:
    port = int(run.until(r"target http://127\.0\.0\.1:(\d+) checked").group(1))
    return listening_pid(port)


STEPS = ["--transports", "sse", "--steps", "10,20,30", "--hold", "4", "--settle", "1", "--settle-max", "0"]


def test_a_killed_target_fails_the_run_and_its_step(run_factory) -> None:
    run = run_factory(*STEPS, "--threshold", "sse.delivery.p99<250ms")
    pid = target_pid(run)
    run.until(r"\[sse\] step 0: .* valid")
    os.kill(pid, signal.SIGKILL)
    code = run.finish()
    out = "".join(run.lines)
    assert code == 3, out
    assert "the target process ended" in out
    rows = run.steps()
    assert rows[0]["valid"] == "True"
    down = [r for r in rows if "target_down" in r["flags"]]
    assert down and all(r["valid"] == "False" for r in down), rows
    summary = run.json("summary.json")["transports"]["sse"]
    assert summary["capacity_is_lower_bound"] is False
    assert "failed" in run.json("meta.json")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_frozen_target_makes_its_step_invalid_and_the_gate_fail(run_factory) -> None:
    run = run_factory(*STEPS, "--threshold", "sse.delivery.p99<250ms")
    pid = target_pid(run)
    run.until(r"\[sse\] step 0: .* valid")
    health = run.dir / "locust" / "sse" / "health.jsonl"
    os.kill(pid, signal.SIGSTOP)
    try:
        # Frozen until the health probe has seen it (bounded: a probe times out after 2 s, one per second).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and '"ok": false' not in health.read_text(encoding="utf-8"):
            time.sleep(0.2)
    finally:
        os.kill(pid, signal.SIGCONT)
    code = run.finish()
    out = "".join(run.lines)
    assert code == 1, out
    frozen = [r for r in run.steps() if "target_unresponsive" in r["flags"]]
    assert frozen and all(r["valid"] == "False" for r in frozen), run.steps()
    verdicts = run.json("thresholds.json")
    assert "did not measure the target" in json.dumps(verdicts), verdicts


def test_failing_publishes_are_measured_and_invalidate_their_steps(run_factory, tmp_path: Path) -> None:
    adapter = tmp_path / "faulty.toml"
    adapter.write_text(f"""
name = "faulty"
base_url = "http://127.0.0.1:{{port}}"
channel = "live"

[message]
seq = "seq"
ts = "ts"

[publish]
mode = "http"
method = "POST"
url = "/publish?channel={{channel}}"
headers = {{ "Content-Type" = "application/json" }}
body = '{{{{"seq": {{seq}}, "ts": {{ts}}}}}}'
rate = 5.0

[transports.sse]
url = "/sse?channel={{channel}}"

[process]
start = ["{{python}}", "{SERVER}", "--port", "{{port}}", "--fail-every", "3", "--fail-after", "10"]
ready_url = "/healthz"
""", encoding="utf-8")
    run = run_factory("--target", str(adapter), "--transports", "sse", "--steps", "5,10", "--hold", "4",
                      "--settle", "1", "--settle-max", "0", "--threshold", "sse.delivery.p99<1000ms")
    code = run.finish()
    out = "".join(run.lines)
    assert code == 1, out
    rows = run.steps()
    assert rows and all(int(r["publish_errors"]) > 0 and "publish_failed" in r["flags"] for r in rows), rows
    assert all(int(r["published"]) >= 15 for r in rows), rows  # 5/s over at least 3 s measured
    assert "broker unavailable" in rows[0]["publish_error"]
    notes = " ".join(run.json("meta.json")["notes"])
    assert "publishing events failed" in notes and "broker unavailable" in notes


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_everything_and_keeps_what_was_measured(run_factory, sig: int) -> None:
    run = run_factory(*STEPS, "--processes", "2", "--report")
    run.until(r"target http://127\.0\.0\.1:\d+ checked")
    # A master shows a step once its workers' rows are in (15 s later): wait for the step shape's own record.
    windows = run.dir / "locust" / "sse" / "windows.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (windows.exists() and windows.read_text(encoding="utf-8").strip()):
        time.sleep(0.2)
    started = psutil.Process(run.process.pid).children(recursive=True)
    assert len(started) >= 4, started  # the target, the Locust master and its two workers
    run.process.send_signal(sig)
    code = run.finish()
    out = "".join(run.lines)
    assert code == 128 + sig, out
    assert "Traceback" not in out
    _, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, f"left behind: {alive}"
    rows = run.steps()
    assert rows and rows[0]["valid"] == "True"
    meta = run.json("meta.json")
    assert meta["interrupted"] == signal.Signals(sig).name
    assert (run.dir / "report.html").stat().st_size > 10_000 and (run.dir / "summary.json").exists()


def test_a_step_beyond_the_open_file_limit_is_refused_before_any_load(tmp_path: Path) -> None:
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    done = subprocess.run([*RTCAP, "--transports", "sse", "--steps", "500", "--out-dir", str(tmp_path), "--name", "fd"],
                          capture_output=True, text=True, timeout=60, preexec_fn=cap, cwd=Path(__file__).parents[2])
    assert done.returncode == 2, done.stdout + done.stderr
    assert "open files" in done.stderr and "ulimit -n" in done.stderr
    assert not (tmp_path / "fd" / "steps.csv").exists()


def test_a_target_restarted_on_the_same_port_is_not_taken_for_the_same_one(run_factory) -> None:
    from rtcap.targets.launch import free_port

    port = free_port()
    serve = [sys.executable, "-m", "rtcap.targets.reference", "--host", "127.0.0.1", "--port", str(port), "--rate", "5"]

    def start() -> subprocess.Popen:
        process = subprocess.Popen([*serve], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None and "listening" in process.stdout.readline()
        return process

    first = start()
    second = None
    try:
        run = run_factory("--host", f"http://127.0.0.1:{port}", "--target-pid", str(first.pid), *STEPS)
        run.until(r"\[sse\] step 0: .* valid")
        first.terminate()
        first.wait(timeout=10)
        second = start()  # a supervisor brings it back on the same port: new process, sequence from 1
        code = run.finish()
        out = "".join(run.lines)
        assert code == 3, out
        assert f"process ended" in out
        rows = run.steps()
        assert rows[0]["valid"] == "True" and any("target_down" in r["flags"] for r in rows), rows
        assert all(int(r["duplicated"]) == 0 for r in rows), rows  # a restart is not duplicates
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=10)


def test_a_generator_that_ends_early_fails_the_run_and_names_the_steps_not_measured(run_factory) -> None:
    run = run_factory(*STEPS)
    run.until(r"\[sse\] step 0: .* valid")
    # Locust told to stop (SIGINT: it then ends as if done, exit 0) after its first step: nothing explains the rest.
    locust = [p for p in psutil.Process(run.process.pid).children(recursive=True)
              if "locust" in " ".join(p.cmdline()) and "--headless" in p.cmdline()]
    assert locust, "no Locust process under rtcap run"
    locust[0].send_signal(signal.SIGINT)
    code = run.finish()
    out = "".join(run.lines)
    assert code == 3, out
    assert re.search(r"Locust ended \(exit \d+\) after 1 of 3 step\(s\); not measured: 20, 30 users", out), out
    assert len(run.steps()) == 1 and run.steps()[0]["valid"] == "True"
    assert "failed" in run.json("meta.json")
