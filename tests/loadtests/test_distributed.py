"""Distributed runs on Locust's own engine: `rtcap run --expect-workers N` runs the master only, `rtcap worker`
(or plain `locust -f locustfile.py --worker`) runs the workers; per-worker saturation and losses void steps
naming the worker. The end-to-end tests run on loopback; every process a test starts, it stops."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from rtcap.loadtests.generator.timeline import encode_histogram, new_histogram, read_timeline
from rtcap.loadtests.run import collect
from rtcap.reports import flags as F
from rtcap.targets.launch import free_port
from tests.loadtests.test_collect import WINDOW, second

ROOT = Path(__file__).resolve().parents[2]
RUN = ["--transports", "sse", "--settle", "1", "--settle-max", "0", "--rate", "5", "--no-report"]


# the verdict from the timeline's "workers" (pure) ----------------------------------------------------------------

def lag(t: int, lags_ms: list[float], workers: dict | None = None) -> dict:
    histogram = new_histogram()
    for value in lags_ms:
        histogram.record_value(max(1, int(value * 1000)))
    return {"t": t, "transport": "generator", "lag_hist": encode_histogram(histogram), "lag_samples": len(lags_ms),
            **({"workers": workers} if workers else {})}


def test_worker_fields_merge_per_worker_and_keep_the_rest() -> None:
    a = {"t": 1, "transport": "generator", "lag_samples": 0, "workers": {"w1": {"cpu_percent": 40.0, "users": 5}}}
    b = {"t": 1, "transport": "generator", "lag_samples": 0, "workers": {"w1": {"lag_hist": "x"}, "w2": {"users": 5}}}
    merged = collect.merge_seconds([a, b])
    assert merged[0]["workers"] == {"w1": {"cpu_percent": 40.0, "users": 5, "lag_hist": "x"}, "w2": {"users": 5}}
    assert a["workers"] == {"w1": {"cpu_percent": 40.0, "users": 5}}  # the inputs are left as they were


def test_a_saturated_remote_worker_voids_the_step_and_is_named() -> None:
    hot = {"t": 101, "transport": "generator", "lag_samples": 0,
           "workers": {"box-a_1": {"cpu_percent": 97.0, "users": 5}, "box-b_2": {"cpu_percent": 30.0, "users": 5}}}
    row = collect.step_row("sse", WINDOW, [second(101, "sse", [1.0]), hot], [])
    assert F.GENERATOR_SATURATED in row["flags"] and not row["valid"]
    busy = collect.busy_workers([hot])
    assert [(b["worker"], b["saturated"], b["lagging"]) for b in busy] == [("box-a_1", True, False)]


def test_one_lagging_worker_voids_the_step_though_the_merged_lag_is_low() -> None:
    quiet = [0.2] * 200
    rows = [lag(t, quiet * 3, {"w-quiet": {"lag_hist": lag(t, quiet)["lag_hist"]},
                               "w-slow": {"lag_hist": lag(t, [0.2] * 90 + [400.0] * 20)["lag_hist"]}})
            for t in range(100, 104)]
    row = collect.step_row("sse", WINDOW, [second(101, "sse", [1.0]), *rows], [])
    assert row["generator_lag_p99_ms"] < 100  # all wake-ups together look fine
    assert F.GENERATOR_LAGGING in row["flags"]
    assert [b["worker"] for b in collect.busy_workers(rows)] == ["w-slow"]


def test_a_lost_worker_voids_the_steps_it_was_part_of() -> None:
    loss = {"t": 103, "transport": "generator", "lag_samples": 0,
            "workers": {"box-b_2": {"lost_at": 107.0, "last_seen": 103.5, "users": 5}}}
    windows = [dict(WINDOW, step=0, t_start=96.0, t_end=100.0), dict(WINDOW, step=1, t_start=100.0, t_end=104.0),
               dict(WINDOW, step=2, t_start=108.0, t_end=112.0), dict(WINDOW, step=3, t_start=114.0, t_end=118.0)]
    chained = collect._chained(windows)  # noqa: SLF001  (what collect_transport hands step_row)
    rows = [collect.step_row("sse", w, [second(101, "sse", [1.0]), loss], []) for w in chained]
    # Lost during step 1 (last heard of inside it), found between steps 1 and 2: both voided, 0 and 3 not.
    assert [row["valid"] for row in rows] == [True, False, False, True]
    assert F.WORKER_LOST in rows[1]["flags"]


def test_worker_notes_name_the_worker_the_users_and_the_steps(tmp_path: Path) -> None:
    (tmp_path / "timeline.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"t": 101, "transport": "generator", "lag_samples": 0, "workers": {"box-a_1": {"cpu_percent": 97.0}}},
        {"t": 109, "transport": "generator", "lag_samples": 0,
         "workers": {"box-b_2": {"lost_at": 113.0, "last_seen": 109.2, "users": 7}}},
    ]) + "\n")
    rows = [{"step": 0, "users": 10, "t_start": 100.0, "t_end": 104.0}]
    notes = collect.worker_notes("sse", tmp_path, rows)
    assert notes == ["sse: step 0 (10 users) not counted: worker box-a_1 could not keep up (CPU 97%)",
                     "sse: worker box-b_2 was lost while it held 7 users (last heard of 4 s before it was found gone); "
                     "step 1 (in progress) not measured"]


# end to end on loopback -------------------------------------------------------------------------------------------

def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 30.0) -> int:
    """Stop a process this test started, then whatever is left of its session."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        code = process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        code = None
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return process.wait() if code is None else code


def _wait_for(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[int, list]]:
    """A free master port, and a list the test adds the workers it starts to (all stopped at the end)."""
    started: list[tuple[subprocess.Popen, Path]] = []
    try:
        yield free_port(), started
    finally:
        for process, _log in started:
            _stop(process)


def start_worker(started: list, log: Path, *argv: str) -> subprocess.Popen:
    """Start a worker command in its own session, its output in `log`."""
    process = subprocess.Popen([sys.executable, *argv], stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
                               start_new_session=True)
    started.append((process, log))
    return process


def rtcap_worker(started: list, log: Path, port: int) -> subprocess.Popen:
    return start_worker(started, log, "-m", "rtcap.loadtests.run.worker", "--master", f"127.0.0.1:{port}")


def rtcap_run(out: Path, name: str, port: int, *argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rtcap.loadtests.cli", "run", "--expect-workers", "2",
                             "--master-bind-port", str(port), *RUN, "--out-dir", str(out), "--name", name, *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            start_new_session=True)


def test_two_rtcap_workers_carry_the_steps_and_the_master_merges_them(tmp_path: Path, cluster) -> None:
    port, started = cluster
    workers = [rtcap_worker(started, tmp_path / f"worker{i}.log", port) for i in (1, 2)]
    run = rtcap_run(tmp_path, "two", port, "--steps", "10,20", "--hold", "3")
    try:
        output, _ = run.communicate(timeout=240)
    finally:
        _stop(run)
    assert run.returncode == 0, output
    assert "waiting up to 300 s for 2 worker(s) at 127.0.0.1" in output
    steps = pd.read_csv(tmp_path / "two" / "steps.csv")
    assert list(steps["connections"]) == [10, 20]  # totals across both workers, as the target held them
    seconds = [r for r in read_timeline(tmp_path / "two" / "locust" / "sse" / "timeline.jsonl")
               if r["transport"] == "generator"]
    lagged = {w for r in seconds for w, part in r.get("workers", {}).items() if part.get("lag_hist")}
    heard = {w for r in seconds for w, part in r.get("workers", {}).items() if "cpu_percent" in part}
    assert len(lagged) == 2 and heard == lagged  # each worker's timer lag and heartbeat CPU, under its id
    assert max(part["users"] for r in seconds for part in r["workers"].values() if "users" in part) == 10
    assert all(w.poll() is None for w in workers)  # ready for the next transport's master
    assert [_stop(w) for w in workers] == [143, 143]
    log = (tmp_path / "worker1.log").read_text()
    assert re.search(r"worker 1 started \(pid \d+\)", log) and "Traceback" not in log


def test_a_worker_lost_mid_run_voids_its_step_names_it_and_stops_the_run(tmp_path: Path, cluster) -> None:
    """One rtcap worker and one plain `locust -f locustfile.py --worker`; the plain one is killed after step 0."""
    port, started = cluster
    rtcap_worker(started, tmp_path / "rtcap-worker.log", port)
    plain = start_worker(started, tmp_path / "plain-worker.log", "-m", "locust", "-f", str(ROOT / "locustfile.py"),
                         "--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
    run = rtcap_run(tmp_path, "lost", port, "--steps", "10,20,30", "--hold", "4")
    try:
        windows = tmp_path / "lost" / "locust" / "sse" / "windows.jsonl"
        _wait_for(lambda: windows.exists() and windows.read_text().strip() or run.poll() is not None, 120,
                  "the first step to finish")
        plain.kill()
        output, _ = run.communicate(timeout=180)
    finally:
        _stop(run)
    assert run.returncode == 3, output  # the run failed after it started (--on-worker-loss stop)
    assert re.search(r"worker\(s\) lost: \S+ \((5|10) users\); the run stopped", output), output
    meta = json.loads((tmp_path / "lost" / "meta.json").read_text())
    lost = [n for n in meta["notes"] if "was lost while it held" in n]
    assert len(lost) == 1 and re.search(r"sse: worker \S+ was lost while it held (5|10) users", lost[0]), meta["notes"]
    assert "not counted" in lost[0] or "not measured" in lost[0]
    steps = pd.read_csv(tmp_path / "lost" / "steps.csv")
    assert len(steps) <= 2  # the run stopped: step 2 was never measured
    counted = steps[steps["valid"]]
    assert len(counted) < len(steps) or "(in progress) not measured" in lost[0]
