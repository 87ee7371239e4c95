"""The sampler against real processes."""

import socket
import subprocess
import sys
import time

import psutil
import pytest

from rtcap.loadtests.run.process_probe import ProcessProbe
from rtcap.loadtests.run.sampler import Sampler, read_sockstat


def test_sockstat_is_read_from_proc() -> None:
    inuse, mem = read_sockstat()
    assert inuse is not None and inuse >= 0
    assert mem is not None and mem >= 0


def test_sampler_sees_memory_grow_and_tcp_connections_of_a_real_process(tmp_path) -> None:
    # A child that listens, accepts 3 connections, then allocates 64 MiB and waits for stdin to close.
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print(s.getsockname()[1], flush=True)\n"
        "conns=[s.accept()[0] for _ in range(3)]\n"
        "print('accepted', flush=True); sys.stdin.readline()\n"
        "blob=bytearray(64*1024*1024); print('allocated', flush=True); sys.stdin.readline()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        assert child.stdout.readline().strip() == "accepted"
        probe = ProcessProbe(child.pid, "target")
        before = probe.read(read_sockstat())
        child.stdin.write("\n"); child.stdin.flush()
        assert child.stdout.readline().strip() == "allocated"
        sampler = Sampler([probe], interval=0.1).start()
        deadline = time.monotonic() + 5
        while len(sampler.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        samples = sampler.stop()
        assert before.tcp_established == 3
        assert samples and all(s.tcp_established == 3 for s in samples)
        assert samples[-1].rss_bytes - before.rss_bytes >= 60 * 1024 * 1024
        assert samples[-1].uss_bytes is not None and samples[-1].uss_bytes <= samples[-1].rss_bytes
        for client in clients:
            client.close()
    finally:
        child.kill()
        child.wait()


def test_sampler_keeps_samples_when_the_process_exits() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)
    sampler = Sampler([ProcessProbe(child.pid, "target")], interval=0.05).start()
    deadline = time.monotonic() + 5
    while not sampler.samples and time.monotonic() < deadline:
        time.sleep(0.02)
    child.stdin.close()
    child.wait()
    while not sampler.errors and time.monotonic() < deadline:
        time.sleep(0.02)
    samples = sampler.stop()
    assert samples and sampler.errors and "target" in sampler.errors[0]


def test_interval_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        Sampler([], interval=0.0)
    assert psutil.pid_exists(1)


def test_a_process_tree_is_summed_when_asked() -> None:
    # A parent that starts a child holding 64 MiB, like a server forking a worker per connection.
    child_code = "import sys; blob=bytearray(64*1024*1024); print('ready', flush=True); sys.stdin.readline()"
    parent_code = (
        "import subprocess,sys\n"
        f"c=subprocess.Popen([sys.executable,'-c',{child_code!r}],stdin=subprocess.PIPE,stdout=subprocess.PIPE,text=True)\n"
        "print(c.stdout.readline().strip(), flush=True); sys.stdin.readline(); c.stdin.close(); c.wait()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        alone = ProcessProbe(parent.pid, "target").read((None, None))
        tree = ProcessProbe(parent.pid, "target", include_children=True).read((None, None))
        assert tree.pid == alone.pid == parent.pid
        assert tree.rss_bytes - alone.rss_bytes >= 60 * 1024 * 1024
    finally:
        parent.stdin.close()
        parent.wait(10)


def test_target_samples_are_appended_live_for_the_step_shape(tmp_path) -> None:
    from rtcap.loadtests.generator.settle import LiveSamples

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)
    live_path = tmp_path / "target_live.jsonl"
    try:
        probes = [ProcessProbe(child.pid, "target"), ProcessProbe(child.pid, "generator", count_connections=False)]
        sampler = Sampler(probes, interval=0.05, live_path=live_path).start()
        live = LiveSamples(live_path)
        deadline = time.monotonic() + 5
        while len(live.read()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        samples = sampler.stop()
    finally:
        child.kill()
        child.wait()
    seen = live.read()
    targets = [(s.t, float(s.rss_bytes)) for s in samples if s.role == "target"]
    assert len(seen) >= 3 and seen == targets  # every target sample, and only those
    assert any(s.role == "generator" for s in samples)
