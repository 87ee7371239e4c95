"""Horizontal fan-out, measured: the sampler over a deployment (workers + redis-server), an `rtcap run` against
two workers through Redis whose loss count is the injected drops exactly, the planner's broker line, and a
Redis restart mid-run. Real processes on loopback: the reference target, redis-server, Locust."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtcap.loadtests.run.process_probe import ProcessProbe
from rtcap.loadtests.run.sampler import read_sockstat
from rtcap.reports import schema
from rtcap.reports.deployment import run_rate, step_shares, transport_deployment
from rtcap.reports.plan import PlanInputs, plan_transport, run_models
from rtcap.reports.rundir import load_run
from rtcap.targets.launch import free_port
from tests.targets.test_reference_fanout import wait_until

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 20.0
CLIENTS = 6

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed (bash targets/examples/install.sh)")


@pytest.fixture
def deployment() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`--workers 2 --broker redis` (the supervisor starts its own redis-server), stopped by this fixture."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rtcap.targets.reference", "--port", str(port), "--workers", "2",
                             "--broker", "redis", "--rate", "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and "listening" in proc.stdout.readline()
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_sampler_sums_the_whole_deployment_and_records_each_roles_share(deployment) -> None:
    proc, port = deployment
    clients = []
    try:
        for _ in range(CLIENTS):
            sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
            sock.sendall(b"GET /sse?channel=live HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sock.recv(12).startswith(b"HTTP/1.1 200")  # held by a worker now
            clients.append(sock)
        probe = ProcessProbe(proc.pid, "target", include_children=True)
        taken = wait_until(lambda: (s := probe.read_all(read_sockstat())) and s[0].tcp_established == CLIENTS and s,
                           what=f"{CLIENTS} inbound connections")
        summed, members = taken[0], taken[1:]
        roles = sorted(s.role for s in members)
        assert roles == ["target:broker", "target:supervisor", "target:worker", "target:worker"], roles
        assert summed.role == schema.TARGET_ROLE and summed.pid == proc.pid
        assert summed.rss_bytes == sum(s.rss_bytes for s in members)  # one reading: the shares add up exactly
        by_role = {s.role: s for s in members}
        # The workers' connections to Redis are internal: neither the broker's inbound nor the target's.
        assert by_role["target:broker"].tcp_established == 0 and by_role["target:supervisor"].tcp_established == 0
        assert sum(s.tcp_established for s in members if s.role == "target:worker") == CLIENTS
        assert all(s.tcp_outgoing > 0 for s in members if s.role == "target:worker")  # their Redis connections
        # Without shares (an agent, or a probe asked not to) the sum alone, the same figures.
        alone = ProcessProbe(proc.pid, "target", include_children=True, shares=False).read_all(read_sockstat())
        assert [s.role for s in alone] == ["target"] and alone[0].tcp_established == CLIENTS
    finally:
        for sock in clients:
            sock.close()


@pytest.fixture(scope="module")
def dropped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short `rtcap run` of sse and ws against two workers through Redis, every 10th event dropped."""
    out = tmp_path_factory.mktemp("fanout")
    command = [sys.executable, "-m", "rtcap.loadtests.cli", "run", "--transports", "sse,ws", "--steps", "10,20,30",
               "--hold", "3", "--settle", "1", "--settle-max", "0", "--rate", "20", "--out-dir", str(out), "--name",
               "drop", "--no-report", "--server-args", "--workers 2 --broker redis --drop-every 10"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "drop"


def multiples(lo: int, hi: int, every: int) -> int:
    """Multiples of `every` strictly between lo and hi: the drops a subscriber that saw lo..hi missed."""
    return max(0, (hi - 1) // every - lo // every)


def test_loss_across_workers_is_exactly_the_injected_drops(dropped_run: Path) -> None:
    for transport in ("sse", "ws"):
        subscribers = [json.loads(line) for path in (dropped_run / "locust" / transport).glob("subscribers*.jsonl")
                       for line in path.read_text().splitlines()]
        assert len(subscribers) >= 30, transport
        injected = sum(multiples(s["first"], s["highest"], 10) for s in subscribers)
        assert sum(s["lost"] for s in subscribers) == injected > 0, transport
        assert all(s["lost"] == multiples(s["first"], s["highest"], 10) for s in subscribers), transport
        assert sum(s["duplicated"] + s["reordered"] for s in subscribers) == 0, transport
    run = load_run(dropped_run)
    steps = run.steps
    assert steps["lost"].sum() > 0 and steps["duplicated"].sum() == steps["reordered"].sum() == 0
    # The connections counted are the clients' only (not the workers' own to Redis): one per user.
    assert (steps["connections"] == steps["users"]).all(), steps[["users", "connections"]]


def test_the_run_records_workers_and_broker_and_the_planner_lists_the_broker(dropped_run: Path) -> None:
    run = load_run(dropped_run)
    members = run.samples[run.samples["role"].str.startswith("target:")]
    assert set(members["role"]) == {"target:worker", "target:broker", "target:supervisor"}
    assert members[members["role"] == "target:worker"].groupby("transport")["pid"].nunique().tolist() == [2, 2]
    shares = step_shares(run.steps, run.samples, run_rate(run.meta))
    sse = transport_deployment(shares, "sse")
    assert sse is not None and sse["workers"] == 2 and sse["broker_rss_bytes"] > 0
    # 20 events/s published, each into Redis once and out to 2 workers; streams make no requests once open.
    assert 55 <= sse["broker_msgs_per_s"] <= 65 and sse["conns_imbalance"] >= 1
    model = next(m for m in run_models(run) if m["transport"] == "sse")
    assert model["deployment"]["workers"] == 2
    inputs = PlanInputs(viewers=1_000_000, update_rate=20, freshness_s=1, instance_memory=4 * 2**30,
                        instance_cores=2)
    planned = plan_transport(model, inputs)
    if planned["available"]:
        broker = planned["broker"]
        assert broker["workers"] == [n * 2 for n in planned["instances"]]
        assert broker["msgs_per_s"][1] == pytest.approx(20 * (1 + broker["workers"][1]))
        assert broker["binds"] == (broker["msgs_per_s"][1] > broker["capacity_msgs_per_s"])


def test_a_redis_restart_mid_run_is_noted_and_delivery_resumes(tmp_path: Path) -> None:
    from rtcap.loadtests.run.scenarios import Arm, run_arm
    from rtcap.loadtests.run.sweep import RunOptions

    arm = Arm("redis-restart", ("sse",), ("--workers", "2", "--broker", "redis"), fault="redis-restart")
    options = RunOptions(name="restart", out_dir=tmp_path, transports=["sse"], steps=[10, 20, 30], hold=5.0,
                         settle=1.0, settle_max=0.0, rate=10.0, report=False, server_args=list(arm.server_args))
    said: list[str] = []
    run_dir = run_arm(arm, options, said.append)  # no exception: the run survives its broker's restart
    outages = [json.loads(line) for line in (run_dir / schema.OUTAGES_FILE).read_text().splitlines()]
    assert len(outages) == 1, outages
    outage = outages[0]
    assert outage["transport"] == "sse" and 1.5 <= outage["down_s"] < 5
    assert outage["reconnect_s"] is not None and outage["reconnect_s"] < 5  # both workers back on Redis
    assert outage["resume_within_s"] is not None and outage["resume_within_s"] <= 3
    assert outage["silent_s"] >= 1  # the ticker had nothing to publish while Redis was down
    assert outage["step"] == 1  # placed inside the second step's measurement window
    for name in ("lost", "duplicated", "reordered", "connects"):
        assert isinstance(outage[name], int) and outage[name] >= 0
    # The broker stays up after its restart: the step after the outage delivers and counts.
    last = load_run(run_dir).steps.iloc[-1]
    assert last["step"] == 2 and last["valid"] and last["delivered"] > 0, last["flags"]
    meta = json.loads((run_dir / schema.META_FILE).read_text())
    assert any("Redis was stopped" in note for note in meta["notes"]), meta["notes"]
    assert any(line.startswith("fault: sse: Redis was stopped") for line in said), said
