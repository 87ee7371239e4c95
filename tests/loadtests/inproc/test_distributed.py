"""Distributed recording: workers ship their per-second rows to the master over Locust's own channel, the
master merges them exactly and alone writes timeline.jsonl / subscribers.jsonl.

The truth test runs a real master and two real workers in this process (ZeroMQ on loopback) next to a
single-process run fed the same events; the end-to-end tests run `python -m locust --processes 2`.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import pytest
from locust import User, constant, task
from locust.argument_parser import get_parser
from locust.env import Environment

from rtcap.loadtests.generator import hooks
from rtcap.loadtests.transports import metrics
from rtcap.loadtests.generator.timeline import decode_histogram, read_timeline
from rtcap.targets.launch import free_port
from tests.loadtests.locust_run import subscribers

ROOT = Path(__file__).resolve().parents[3]
PERCENTILES = (50, 95, 99)
SECONDS = 3
EVENTS_PER_SECOND = 1500


class Idle(User):
    """A user that only exists: the test fires the request events itself, so both sides see the same ones."""

    wait_time = constant(600)

    @task
    def nothing(self) -> None:
        pass


def options(record: Path):
    return get_parser().parse_args(["--rtcap-record", str(record)])


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        gevent.sleep(0.02)


def generated_events(seed: int) -> list[list[tuple[str, str, str, float, bool]]]:
    """Per second: (request_type, transport, name, response_time_ms, failed), many values over a wide range."""
    rng = random.Random(seed)
    seconds = []
    for _ in range(SECONDS):
        events = []
        for _ in range(EVENTS_PER_SECOND):
            kind = rng.random()
            if kind < 0.45:
                events.append(("sse", "sse", metrics.DELIVERY, rng.lognormvariate(1.5, 1.2), False))
            elif kind < 0.75:
                events.append(("ws", "ws", metrics.DELIVERY, rng.lognormvariate(2.5, 1.5), False))
            elif kind < 0.8:
                events.append(("ws", "ws", metrics.CONNECT, rng.uniform(0.2, 40.0), rng.random() < 0.1))
            elif kind < 0.9:
                events.append(("GET", "poll", "/poll", rng.expovariate(1 / 15.0), rng.random() < 0.05))
            elif kind < 0.97:
                events.append(("poll", "poll", metrics.DELIVERY, rng.uniform(0.0, 1000.0), False))
            else:
                events.append(("sse", "sse", metrics.RECEIVED, 0.0, False))
        seconds.append(events)
    return seconds


def fire(environment: Environment, event: tuple[str, str, str, float, bool]) -> None:
    request_type, transport, name, ms, failed = event
    environment.events.request.fire(request_type=request_type, name=name, response_time=ms, response_length=0,
                                    exception=RuntimeError("failed") if failed else None, context={"transport": transport})


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Environment, list[Environment]]]:
    """A real Locust master and two real workers connected over loopback, rtcap's hooks installed."""
    master_env = Environment(user_classes=[Idle], parsed_options=options(tmp_path / "distributed"))
    master = master_env.create_master_runner("127.0.0.1", 0)
    hooks.install(master_env)
    workers = []
    for _ in range(2):
        worker_env = Environment(user_classes=[Idle], parsed_options=options(tmp_path / "distributed"))
        worker_env.create_worker_runner("127.0.0.1", master.server.port)
        hooks.install(worker_env)
        workers.append(worker_env)
    wait_for(lambda: len(master.clients.ready) == 2, 10, "both workers to connect")
    try:
        yield master_env, workers
    finally:
        master.quit()
        for worker_env in workers:
            worker_env.runner.quit()


def _compare(one: dict, merged: dict) -> None:
    for name in ("delivered", "requests", "connects", "errors"):
        assert merged[name] == one[name], (one["t"], one["transport"], name)
    for name in ("delivery_hist", "connect_hist", "request_hist"):
        assert bool(merged[name]) == bool(one[name]), (one["t"], one["transport"], name)
        if one[name]:
            a, b = decode_histogram(one[name]), decode_histogram(merged[name])
            assert b.get_total_count() == a.get_total_count()
            assert [b.get_value_at_percentile(p) for p in PERCENTILES] == [a.get_value_at_percentile(p) for p in PERCENTILES]
            assert (b.get_min_value(), b.get_max_value()) == (a.get_min_value(), a.get_max_value())


@pytest.mark.parametrize("end", ["quit", "stop"])
def test_two_workers_merged_agree_with_one_process_on_the_same_events(tmp_path: Path, cluster, end: str) -> None:
    """The truth test: merged percentiles of a 2-worker run equal a single-process run's on the same data.

    end="quit" is how a headless master ends (its test_stop fires before the workers hear anything);
    end="stop" is the web UI's Stop (workers stop first, the master's test_stop follows)."""
    master_env, workers = cluster
    local_env = Environment(user_classes=[Idle], parsed_options=options(tmp_path / "local"))
    local = local_env.create_local_runner()
    hooks.install(local_env)
    local.start(1, spawn_rate=100, wait=True)
    master_env.runner.start(2, spawn_rate=100)
    wait_for(lambda: all(hooks.recorder_of(w) is not None for w in workers), 10, "the workers' test_start")
    master_recorder = hooks.recorder_of(master_env)
    assert master_recorder is not None and master_recorder.role == "master"

    rng = random.Random(7)
    fed = Counter()
    seconds = []
    for batch in generated_events(seed=2024):
        gevent.sleep(1.0 - time.time() % 1.0 + 0.01)  # each batch inside one wall-clock second on both sides
        second = int(time.time())
        for event in batch:
            fire(local_env, event)
            # An uneven split: polling only ever on the first worker, the rest at random.
            fire(workers[0] if event[1] == "poll" else rng.choice(workers), event)
            fed[(second, event[1])] += 1
        assert int(time.time()) == second, "firing one batch took longer than a second"
        seconds.append(second)

    # Live: the workers' periodic stats reports (every 3 s each, not in step) bring the finished seconds to
    # the master; once both workers have reported the first second, the live view holds all of it.
    first = {key: count for key, count in fed.items() if key[0] == seconds[0]}

    def live_first_second() -> dict:
        return {(r["t"], r["transport"]): r for r in master_recorder.rows(since=seconds[0]) if (r["t"], r["transport"]) in first}

    def complete() -> bool:
        live = live_first_second()
        return len(live) == len(first) and all(
            row["delivered"] + row["requests"] + row["connects"] == first[key] for key, row in live.items())

    wait_for(complete, 15, "both workers' periodic reports of the first second")
    wait_for(lambda: set(first) <= {(r["t"], r["transport"]) for r in hooks.recorder_of(local_env).rows()}, 5,
             "the single process to finish the first second")
    local_live = {(r["t"], r["transport"]): r for r in hooks.recorder_of(local_env).rows()}
    for key, row in live_first_second().items():
        _compare(local_live[key], row)

    local.quit()
    if end == "quit":
        master_env.runner.quit()
    else:
        master_env.runner.stop()

    distributed = tmp_path / "distributed"
    assert sorted(path.name for path in distributed.iterdir()) == ["timeline.jsonl"]  # workers wrote nothing
    one = {(r["t"], r["transport"]): r for r in read_timeline(tmp_path / "local" / "timeline.jsonl")}
    lines = read_timeline(distributed / "timeline.jsonl")
    merged = {(r["t"], r["transport"]): r for r in lines}
    assert len(merged) == len(lines)  # one line per (second, transport): nothing arrived late
    for key, count in fed.items():
        assert key in one and key in merged, key
        _compare(one[key], merged[key])
        assert one[key]["delivered"] + one[key]["requests"] + one[key]["connects"] == count
    # The master's live view holds exactly what it wrote.
    assert {(r["t"], r["transport"]): r for r in master_recorder.rows()} == merged


def test_the_master_collects_the_last_rows_of_a_worker_that_recorded_without_users(tmp_path: Path, cluster) -> None:
    """A worker whose test started but ran no user still answers the master's flush with what it holds."""
    master_env, workers = cluster
    for environment in (master_env, *workers):
        environment.events.test_start.fire(environment=environment)
    for i, worker_env in enumerate(workers):
        for ms in range(1, 101):
            fire(worker_env, ("sse", "sse", metrics.DELIVERY, float(ms * (i + 1)), False))
    master_env.events.test_stop.fire(environment=master_env)
    rows = [r for r in read_timeline(tmp_path / "distributed" / "timeline.jsonl") if r["transport"] == "sse"]
    assert sum(r["delivered"] for r in rows) == 200
    assert all(hooks.recorder_of(w).stopped for w in workers)


def test_workers_that_quit_on_their_own_lose_nothing(tmp_path: Path, cluster) -> None:
    """Ctrl-C on the workers: each ships its rows, then Locust's "quit"; the last one stops the master's test
    inside its message loop, where the master must not block, yet it writes everything."""
    master_env, workers = cluster
    master_env.runner.start(2, spawn_rate=100)
    wait_for(lambda: all(hooks.recorder_of(w) is not None for w in workers), 10, "the workers' test_start")
    for worker_env in workers:
        for ms in range(1, 151):
            fire(worker_env, ("ws", "ws", metrics.DELIVERY, float(ms), False))
    for worker_env in workers:
        worker_env.events.quitting.fire(environment=worker_env, reverse=True)  # as Locust's shutdown() does
    master_recorder = hooks.recorder_of(master_env)
    wait_for(lambda: master_recorder.stopped, 10, "the master to stop its test and write")
    hooks.stop_on_quit(master_env)  # the master quitting joins its pending write, if any
    lines = read_timeline(tmp_path / "distributed" / "timeline.jsonl")
    assert len({(r["t"], r["transport"]) for r in lines}) == len(lines)  # the rows came before the write
    assert sum(r["delivered"] for r in lines if r["transport"] == "ws") == 300


def run_locust(reference_url: str, record: Path, *extra: str) -> subprocess.CompletedProcess:
    """A headless staircase of SSE users, 10 then 20, 3 s each, recorded into `record`."""
    files = f"{ROOT / 'loadtests' / 'generator' / 'catalog.py'},{ROOT / 'loadtests' / 'generator' / 'stepload.py'}"
    command = [sys.executable, "-m", "locust", "-f", files, "--headless", "--host", reference_url,
               "--steps", "10,20", "--step-hold", "3", "--step-settle", "1", "--step-spawn-rate", "100",
               "--rtcap-record", str(record), "--json-file", str(record / "locust"), "--only-summary",
               "--loglevel", "WARNING", *extra, "SSEUser"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_locust_run_writes_one_timeline_that_matches_locusts_own_counts(reference_url: str, tmp_path: Path,
                                                                          processes: int) -> None:
    extra: list[str] = []
    if processes > 1:
        port = str(free_port())
        extra = ["--processes", str(processes), "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
                 "--master-host", "127.0.0.1", "--master-port", port]
    done = run_locust(reference_url, tmp_path, *extra)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "Traceback" not in output, output

    assert sorted(p.name for p in tmp_path.glob("timeline*.jsonl")) == ["timeline.jsonl"]
    assert sorted(p.name for p in tmp_path.glob("subscribers*.jsonl")) == ["subscribers.jsonl"]
    lines = read_timeline(tmp_path / "timeline.jsonl")
    assert len({(r["t"], r["transport"]) for r in lines}) == len(lines)
    sse = [r for r in lines if r["transport"] == "sse"]
    # Locust's own final statistics (its --csv files are rewritten once a second and can miss the last
    # moments; --json-file is written at shutdown, after the workers' final reports).
    stats = {(e["method"], e["name"]): e for e in json.loads((tmp_path / "locust.json").read_text())}
    # Every delivery Locust counted (over all workers) is in the timeline once, and only once.
    assert sum(r["delivered"] for r in sse) == stats[("sse", "delivery")]["num_requests"] > 0
    assert sum(r["connects"] for r in sse) == stats[("sse", "connect")]["num_requests"] == 20
    assert sum(decode_histogram(r["delivery_hist"]).get_total_count() for r in sse if r["delivery_hist"]) \
        == sum(r["delivered"] for r in sse)
    # Per second, the processes' figures add up: 20 connections, 20 users x 20 events/s.
    assert max(r["open_connections"] for r in sse) == 20
    assert max(r["delivered"] for r in sse) == pytest.approx(20 * 20, rel=0.1)
    subs = subscribers(tmp_path)
    assert len(subs) == 20  # one line per user that ran
    assert all(s["transport"] == "sse" and s["lost"] == 0 for s in subs)
    assert len((tmp_path / "windows.jsonl").read_text().splitlines()) == 2
