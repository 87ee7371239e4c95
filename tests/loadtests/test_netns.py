"""A distributed sweep across network namespaces: the proof that nothing in rtcap's master/worker/agent path
quietly relies on loopback.

Five namespaces this test makes (unique names per run, deleted in a finally with everything in them):

    switch   a bridge, nothing else (the "LAN")
    target   10.231.7.1: the reference target bound to that address, and `rtcap agent --bind 10.231.7.1`
    gen1     10.231.7.2: `rtcap worker --master 10.231.7.4 --once`
    gen2     10.231.7.3: the same
    master   10.231.7.4: `rtcap run --expect-workers 2 --master-bind-host 10.231.7.4 --host http://10.231.7.1:8000
             --target ADAPTER` (adapter: `[process] agent_url = "http://10.231.7.1:9120"`), then the same sweep
             as a single process (no workers) for comparison

Every address lives inside the namespaces made here (none on the host's own interfaces), so the test cannot
reach or disturb anything else on the machine. It needs root and iproute2 and skips, saying why, without them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from rtcap.loadtests.generator.timeline import read_timeline
from tests.loadtests.test_distributed import _stop

ROOT = Path(__file__).resolve().parents[2]
SUBNET = "10.231.7"
"""A private /24 that exists only on the bridge this test makes (each run has its own bridge namespace)."""
HOSTS = {"target": 1, "gen1": 2, "gen2": 3, "master": 4}
TARGET_PORT, AGENT_PORT, MASTER_PORT = 8000, 9120, 5557
RATE = 10.0
"""Events/s the target's own ticker publishes to the one channel every listener subscribes to."""
STEPS, HOLD, SETTLE = "10,20", "4", "1"
TOKEN = "netns-test-token"
"""The reference target refuses to bind off loopback without a publish token (it publishes on its own here)."""

pytestmark = [pytest.mark.timeout(180), pytest.mark.solo]  # namespaces, a distributed sweep: alone (tests/solo.py)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


def _why_no_namespaces() -> str | None:
    """The reason network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    probe = f"rtcap-probe-{uuid.uuid4().hex[:8]}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Lab:
    """The namespaces of one test run and the processes started in them."""

    prefix: str
    started: list[subprocess.Popen] = field(default_factory=list)

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @staticmethod
    def address(host: str) -> str:
        return f"{SUBNET}.{HOSTS[host]}"

    def command(self, host: str, *argv: str) -> list[str]:
        """`argv` (a Python module run by this interpreter) inside `host`'s namespace."""
        return ["ip", "netns", "exec", self.ns(host), sys.executable, *argv]

    def start(self, host: str, log: Path, *argv: str) -> subprocess.Popen:
        """Start `python argv` in `host` in its own session (ip netns exec execs it: the pid is Python's)."""
        process = subprocess.Popen(self.command(host, *argv), stdout=log.open("w"), stderr=subprocess.STDOUT,
                                   cwd=ROOT, start_new_session=True)
        self.started.append(process)
        return process

    def pids(self) -> list[int]:
        """Every process still running inside this run's namespaces."""
        found = []
        for host in (*HOSTS, "switch"):
            listed = _ip("netns", "pids", self.ns(host), check=False).stdout.split()
            found += [int(pid) for pid in listed]
        return found


def _build(lab: Lab) -> None:
    """The switch with its bridge, and one veth per host from the host's namespace to it."""
    for host in ("switch", *HOSTS):
        _ip("netns", "add", lab.ns(host))
        _ip("-n", lab.ns(host), "link", "set", "lo", "up")
    _ip("-n", lab.ns("switch"), "link", "add", "br0", "type", "bridge")
    _ip("-n", lab.ns("switch"), "link", "set", "br0", "up")
    for host in HOSTS:
        port = f"p-{host}"
        # Made inside the host's namespace with its peer straight in the switch's: no name in the root namespace.
        _ip("-n", lab.ns(host), "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", lab.ns("switch"))
        _ip("-n", lab.ns("switch"), "link", "set", port, "master", "br0")
        _ip("-n", lab.ns("switch"), "link", "set", port, "up")
        _ip("-n", lab.ns(host), "addr", "add", f"{lab.address(host)}/24", "dev", "eth0")
        _ip("-n", lab.ns(host), "link", "set", "eth0", "up")


def _teardown(lab: Lab) -> None:
    """Stop what this test started, kill whatever else runs in its namespaces (only this test could have
    started it there), delete the namespaces (their veths and the bridge go with them)."""
    for process in lab.started:
        _stop(process)
    for pid in lab.pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for host in ("switch", *HOSTS):
        _ip("netns", "del", lab.ns(host), check=False)


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = _why_no_namespaces()
    if reason:
        pytest.skip(reason)
    made = Lab(f"rtcap-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    try:
        _build(made)
        yield made
    finally:
        _teardown(made)
    leftover = [line for line in _ip("netns", "list").stdout.splitlines() if line.startswith(made.prefix)]
    assert leftover == [], f"namespaces left behind: {leftover}"


def _first_line(log: Path, process: subprocess.Popen, needle: str, seconds: float = 30.0) -> str:
    """Wait (bounded) until `log` has a line containing `needle`; fail with the log if the process ends first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if needle in line:
                return line
        assert process.poll() is None, f"{log.name} ended with {process.returncode}:\n{log.read_text()}"
        time.sleep(0.1)
    raise AssertionError(f"no {needle!r} in {log.name} within {seconds:g} s:\n{log.read_text()}")


def _adapter(directory: Path, target: str) -> Path:
    path = directory / "netns.toml"
    path.write_text(f"""
name = "netns-reference"
base_url = "http://{target}:{TARGET_PORT}"
channel = "live"
[message]
seq = "seq"
ts = "ts"
[publish]
mode = "self"
rate = {RATE}
[transports.sse]
url = "/sse?channel={{channel}}"
[process]
agent_url = "http://{target}:{AGENT_PORT}"
""")
    return path


def _run(lab: Lab, out: Path, name: str, adapter: Path, *extra: str) -> subprocess.CompletedProcess:
    """`rtcap run` in the master's namespace against the target's address (bounded)."""
    argv = lab.command("master", "-m", "rtcap.loadtests.cli", "run", "--target", str(adapter),
                       "--host", f"http://{lab.address('target')}:{TARGET_PORT}", "--transports", "sse",
                       "--steps", STEPS, "--hold", HOLD, "--settle", SETTLE, "--settle-max", "0",
                       "--out-dir", str(out), "--name", name, "--no-report", *extra)
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_a_sweep_split_over_two_generator_hosts_matches_one_process(lab: Lab, tmp_path: Path) -> None:
    target_ip, master_ip = lab.address("target"), lab.address("master")
    target = lab.start("target", tmp_path / "target.log", "-m", "rtcap.targets.reference", "--host", target_ip,
                       "--port", str(TARGET_PORT), "--rate", f"{RATE:g}", "--publish-token", TOKEN,
                       "--log-level", "warning")
    _first_line(tmp_path / "target.log", target, f"listening on http://{target_ip}:{TARGET_PORT}")
    agent = lab.start("target", tmp_path / "agent.log", "-m", "rtcap.loadtests.run.agent", "--pid", str(target.pid),
                      "--bind", target_ip, "--listen-port", str(AGENT_PORT))
    assert f"serving http://{target_ip}:{AGENT_PORT}" in _first_line(tmp_path / "agent.log", agent, "serving")
    adapter = _adapter(tmp_path, target_ip)

    workers = [lab.start(host, tmp_path / f"{host}.log", "-m", "rtcap.loadtests.run.worker",
                         "--master", f"{master_ip}:{MASTER_PORT}", "--once") for host in ("gen1", "gen2")]
    distributed = _run(lab, tmp_path, "distributed", adapter, "--expect-workers", "2",
                       "--master-bind-host", master_ip, "--master-bind-port", str(MASTER_PORT))
    assert distributed.returncode == 0, distributed.stdout + distributed.stderr
    assert f"for 2 worker(s) at {master_ip}" in distributed.stdout
    # --once: each worker served the one transport's master and ended normally.
    codes = [w.wait(timeout=30) for w in workers]
    assert codes == [0, 0], [(tmp_path / f"{host}.log").read_text() for host in ("gen1", "gen2")]

    single = _run(lab, tmp_path, "single", adapter)
    assert single.returncode == 0, single.stdout + single.stderr

    a = pd.read_csv(tmp_path / "distributed" / "steps.csv")
    b = pd.read_csv(tmp_path / "single" / "steps.csv")
    users = [int(s) for s in STEPS.split(",")]
    for steps in (a, b):
        assert list(steps["users"]) == users and steps["valid"].all(), steps[["users", "flags"]]
        # The target's inbound connections, counted by the agent inside the target's namespace.
        assert list(steps["connections"]) == users
        assert (steps[["lost", "duplicated", "reordered", "errors"]] == 0).all().all()
    # Every listener gets every event, so delivered events/s are RATE x listeners. A step is measured over the
    # whole seconds of its window (2 here: HOLD - SETTLE = 3 s, cut to whole seconds), which hold RATE * 2 = 20
    # ticks +- 1 per listener whatever the ticker's phase: 5% per edge at most, and a tick's deliveries may
    # straddle a second boundary at either edge, so 10% bounds both runs against the truth and each other.
    # Seen here: exactly 100 and 200 events/s in both runs.
    expected = [RATE * u for u in users]
    for steps in (a, b):
        assert steps["msgs_per_s"].tolist() == pytest.approx(expected, rel=0.10)
    assert a["msgs_per_s"].tolist() == pytest.approx(b["msgs_per_s"].tolist(), rel=0.10)

    # Both generator hosts carried users (Locust splits them evenly): the master heard from two workers.
    seconds = read_timeline(tmp_path / "distributed" / "locust" / "sse" / "timeline.jsonl")
    held = {w for r in seconds if r["transport"] == "generator" for w, part in r.get("workers", {}).items()
            if part.get("users")}
    assert len(held) == 2, held

    # The samples came through the agent (the master's namespace has no view of the target's process).
    samples = pd.read_csv(tmp_path / "distributed" / "samples.csv")
    assert set(samples[samples["role"] == "target"]["source"]) == {f"agent:http://{target_ip}:{AGENT_PORT}"}

    assert _stop(agent) in (0, -signal.SIGTERM) and _stop(target) in (0, -signal.SIGTERM)
    assert lab.pids() == [], "processes still running inside the test's namespaces"
