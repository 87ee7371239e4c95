"""Cgroup and Prometheus probes against real sources on this machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rtcap.loadtests.run.probes import CgroupProbe, MetricsProbe, ProbeError, parse_process_metrics

V1_MEMORY = Path("/sys/fs/cgroup/memory")
V2_ROOT = Path("/sys/fs/cgroup")


def _make_cgroup() -> Path:
    """A fresh memory cgroup (v2 if the memory controller is there, else v1), or skip."""
    name = f"rtcap-test-{os.getpid()}"
    for parent in (V2_ROOT, V1_MEMORY):
        marker = "memory.current" if parent == V2_ROOT else "memory.usage_in_bytes"
        try:
            path = parent / name
            path.mkdir(exist_ok=True)
        except OSError:
            continue
        if (path / marker).is_file():
            return path
        path.rmdir()
    pytest.skip("cannot create a memory cgroup here (needs root and a memory controller)")


def test_cgroup_probe_sees_memory_charged_inside_the_group() -> None:
    group = _make_cgroup()
    code = (
        "import os,sys\n"
        f"open({str(group / 'cgroup.procs')!r},'w').write(str(os.getpid()))\n"
        "blob=bytearray(64*1024*1024)\n"
        "for i in range(0,len(blob),4096): blob[i]=1\n"
        "print('ready',flush=True); sys.stdin.readline()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        sample = CgroupProbe(group).read((None, None))
        assert sample.rss_bytes >= 64 * 1024 * 1024
        assert sample.role == "target"
    finally:
        child.stdin.close()
        child.wait(10)
        group.rmdir()


def test_cgroup_probe_rejects_a_directory_that_is_not_a_cgroup(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="memory.current"):
        CgroupProbe(tmp_path)


def test_metrics_probe_reads_the_reference_targets_process_metrics(reference_url: str) -> None:
    probe = MetricsProbe(f"{reference_url}/metrics")
    sample = probe.read((None, None))
    assert 10 * 1024 * 1024 < sample.rss_bytes < 2 * 1024**3
    assert sample.num_fds and sample.num_fds > 3


def test_metrics_probe_refuses_an_endpoint_without_process_metrics(reference_url: str) -> None:
    with pytest.raises(ProbeError, match="does not expose Prometheus text"):
        MetricsProbe(f"{reference_url}/healthz")


def test_parse_process_metrics_ignores_labelled_and_other_samples() -> None:
    text = ("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.5e+07\n"
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 2.5\n"
            "# TYPE other gauge\nother{a=\"b\"} 3\n")
    assert parse_process_metrics(text) == {"process_resident_memory_bytes": 1.5e7, "process_cpu_seconds_total": 2.5}
