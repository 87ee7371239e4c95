"""`rtcap agent` as a real process watching a real reference target on loopback, read through AgentProbe."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest

from rtcap.loadtests.cli import main
from rtcap.loadtests.run import collect
from rtcap.loadtests.run.agent_probe import AgentError, AgentProbe
from rtcap.loadtests.run.process_probe import CgroupProcsProbe, ProcessProbe
from rtcap.loadtests.run.sampler import NoReading, Sampler, TargetGone, read_sockstat, sample_rows
from rtcap.loadtests.run.sweep import RunError, RunOptions, _target_probe
from rtcap.reports import flags as F
from rtcap.reports import schema
from rtcap.targets.adapter import adapter_from_dict
from tests.conftest import launch_reference
from tests.loadtests.test_collect import WINDOW

BALLAST = 1 << 20
"""Resident bytes the reference target holds per open SSE connection."""
CONNECTIONS = 12


@contextmanager
def agent(*watch: str) -> Iterator[str]:
    """`python -m rtcap.loadtests.run.agent WATCH... --listen-port 0` on loopback; yields its URL."""
    process = subprocess.Popen([sys.executable, "-m", "rtcap.loadtests.run.agent", *watch, "--listen-port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # its first line names the address; EOF if it refused to start
        assert "serving http://127.0.0.1:" in line, process.stderr.read()
        yield line.split("serving ", 1)[1].split()[0]
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def reference(*args: str) -> Iterator[Any]:
    target = launch_reference(*args, rate=5)
    try:
        yield target
    finally:
        target.stop()


def until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def open_sse(base_url: str, count: int) -> list[socket.socket]:
    """`count` SSE connections, each past its response head (so the server holds it, and its ballast)."""
    address = urlsplit(base_url)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((address.hostname, address.port), timeout=5)
        sock.sendall(f"GET /sse?channel=live HTTP/1.1\r\nHost: {address.netloc}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
        sockets.append(sock)
    return sockets


def test_the_agent_serves_connections_and_memory_as_a_local_probe_reads_them() -> None:
    with reference("--ballast-sse", str(BALLAST)) as target, agent("--pid", str(target.pid)) as url:
        remote, local = AgentProbe(url), ProcessProbe(target.pid, "target", include_children=True)
        assert remote.health["watching"].startswith(f"pid {target.pid}") and remote.health["gone"] is None
        before = remote.read(read_sockstat())
        assert (before.role, before.source, before.pid, before.tcp_established) == ("target", f"agent:{url}",
                                                                                      target.pid, 0)
        sockets = open_sse(target.adapter.base_url, CONNECTIONS)
        try:
            after = until(lambda: (s := remote.read(read_sockstat())).tcp_established == CONNECTIONS and s,
                          what=f"{CONNECTIONS} established connections through the agent")
            assert local.read(read_sockstat()).tcp_established == after.tcp_established
            assert after.rss_bytes - before.rss_bytes >= 0.8 * CONNECTIONS * BALLAST
            assert after.uss_bytes is not None and after.num_fds > before.num_fds and after.state != "stopped"
            assert after.sockstat_tcp_inuse is not None and abs(after.t - time.time()) < 5
        finally:
            for sock in sockets:
                sock.close()


def test_port_mode_watches_the_process_listening_there() -> None:
    with reference() as target:
        port = str(urlsplit(target.adapter.base_url).port)
        with agent("--port", port, "--scope", "port") as url:
            probe = AgentProbe(url)
            assert probe.health["pid"] == target.pid and f"listening on port {port}" in probe.health["watching"]
            assert probe.read(read_sockstat()).pid == target.pid


def test_a_killed_target_is_target_gone_as_locally_and_the_agent_keeps_serving() -> None:
    with reference() as target, agent("--pid", str(target.pid)) as url:
        probe = AgentProbe(url)
        sampler = Sampler([probe], interval=0.1).start()
        try:
            until(lambda: sampler.samples, what="a first sample")
            os.kill(target.pid, signal.SIGKILL)
            # The sampler's verdict is the local one: the target role is gone, what was sampled is kept.
            until(lambda: "target" in sampler.gone, what="the sampler to see the target gone")
        finally:
            samples = sampler.stop()
        assert samples and all(s.source == f"agent:{url}" for s in samples)
        with pytest.raises(TargetGone, match=f"agent {url}"):
            probe.read(read_sockstat())
        with pytest.raises(TargetGone):  # a run started against an agent whose process is gone never starts
            AgentProbe(url)


def test_a_frozen_target_reads_stopped_and_its_step_is_unresponsive() -> None:
    with reference() as target, agent("--pid", str(target.pid)) as url:
        probe = AgentProbe(url)
        os.kill(target.pid, signal.SIGSTOP)
        try:
            frozen = until(lambda: (s := probe.read(read_sockstat())).state == "stopped" and s,
                           what="state stopped")
        finally:
            os.kill(target.pid, signal.SIGCONT)
        row = {**sample_rows([frozen])[0], "t": 101.5}
        flags = collect.step_row("sse", WINDOW, [], [row])["flags"].split(";")
        assert F.TARGET_UNRESPONSIVE in flags  # the same verdict a local SIGSTOP gets
        assert until(lambda: probe.read(read_sockstat()).state != "stopped", what="the target to run again")


def test_an_agent_that_stops_answering_gives_no_sample_never_zeros() -> None:
    with reference() as target:
        with agent("--pid", str(target.pid)) as url:
            probe = AgentProbe(url, timeout=0.5)
            assert probe.read(read_sockstat()).rss_bytes > 0
        with pytest.raises(NoReading, match=f"agent {url}/sample"):
            probe.read(read_sockstat())
        sampler = Sampler([probe], interval=0.05).start()
        try:
            until(lambda: sampler.missed.get("target", 0) >= 3, what="three missed reads")
        finally:
            samples = sampler.stop()
        # No sample, not gone, still probed: the target is alive, only its agent is not.
        assert samples == [] and sampler.gone == {} and sampler.probes == [probe]
        assert "agent" in sampler.last_missed["target"]
        # A target that was to be sampled and was not: the step did not measure it, so it is invalid.
        row = collect.step_row("sse", WINDOW, [], samples, evidence=collect.Evidence(sampled=True))
        assert F.TARGET_UNSAMPLED in row["flags"].split(";") and not row["valid"]
        with pytest.raises(AgentError, match="no rtcap agent answers"):
            AgentProbe(url, timeout=0.5)


def test_a_cgroup_sums_its_processes_and_is_gone_when_empty(tmp_path: Path) -> None:
    # cgroup.procs is all the probe reads of the directory: a plain one stands in for /sys/fs/cgroup/app.slice.
    code = "import sys; blob = bytearray(32 << 20); print('ready', flush=True); sys.stdin.readline()"
    children = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True) for _ in range(2)]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready"
        (tmp_path / "cgroup.procs").write_text(f"{children[0].pid}\n")
        (tmp_path / "broker").mkdir()
        (tmp_path / "broker" / "cgroup.procs").write_text(f"{children[1].pid}\n")
        probe = CgroupProcsProbe(tmp_path)
        assert sorted(pid for pid, _, _ in probe.members()) == sorted(c.pid for c in children)
        with agent("--cgroup", str(tmp_path)) as url:
            remote = AgentProbe(url)
            both = remote.read(read_sockstat())
            assert both.rss_bytes >= 64 << 20 and both.pid == 0 and remote.health["watching"] == f"cgroup {tmp_path}"
            children[0].kill()
            children[0].wait()
            one = probe.read(read_sockstat())  # its pid still listed (the kernel has not dropped it yet)
            assert 32 << 20 <= one.rss_bytes < both.rss_bytes  # a peer's exit is not the set's
            children[1].kill()
            children[1].wait()
            for procs in tmp_path.rglob("cgroup.procs"):
                procs.write_text("")  # as the kernel drops exited pids from their cgroups
            with pytest.raises(TargetGone, match="holds no process"):
                probe.read(read_sockstat())
            with pytest.raises(TargetGone):
                remote.read(read_sockstat())
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_the_run_reads_the_target_through_the_agent_the_adapter_names() -> None:
    base = {"name": "remote", "base_url": "http://127.0.0.1:9", "transports": {"sse": {"url": "/sse"}}}
    with reference() as target, agent("--pid", str(target.pid)) as url:
        adapter = adapter_from_dict({**base, "process": {"agent_url": url}})
        probe = _target_probe(RunOptions(name="x"), adapter, None)
        assert isinstance(probe, AgentProbe) and probe.read(read_sockstat()).pid == target.pid
    with pytest.raises(RunError, match=f"cannot observe the target process: process.agent = .*no rtcap agent answers at {url}"):
        _target_probe(RunOptions(name="x"), adapter, None)  # before any load, not as an empty run


def test_a_run_samples_its_target_only_through_the_agent(tmp_path: Path) -> None:
    with reference() as target, agent("--pid", str(target.pid)) as url:
        adapter = tmp_path / "remote.toml"
        adapter.write_text(f"""
name = "remote"
base_url = "{target.adapter.base_url}"
[publish]
mode = "self"
[transports.sse]
url = "/sse?channel={{channel}}"
[process]
agent_url = "{url}"
""")
        code = main(["run", "--target", str(adapter), "--transports", "sse", "--steps", "4,8", "--hold", "3",
                     "--settle", "1", "--settle-max", "0", "--out-dir", str(tmp_path), "--name", "remote", "--no-report"])
    assert code == 0
    run = tmp_path / "remote"
    samples = pd.read_csv(run / schema.SAMPLES_FILE)
    target_rows = samples[samples["role"] == "target"]
    assert len(target_rows) and set(target_rows["source"]) == {f"agent:{url}"} and (target_rows["pid"] == target.pid).all()
    assert set(samples[samples["role"] == "generator"]["source"]) == {"psutil"}
    steps = pd.read_csv(run / schema.STEPS_FILE)
    assert steps["valid"].all() and (steps["connections"] == steps["users"]).all()  # the agent's count
