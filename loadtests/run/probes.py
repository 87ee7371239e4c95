"""Probes for targets that are not one visible process: a cgroup, or a Prometheus /metrics endpoint.

Each has the `read(sockstat) -> Sample` and `role` that the sampler expects, like `process_probe.ProcessProbe`.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from rtcap.loadtests.run.sampler import Sample


class ProbeError(RuntimeError):
    """The probe cannot read its source (missing cgroup file, unreachable or incomplete /metrics)."""


class _CpuRate:
    """CPU percent (100 = one core) from a cumulative CPU-seconds counter read at wall-clock times."""

    def __init__(self) -> None:
        self.last: tuple[float, float] | None = None

    def percent(self, cpu_seconds: float, now: float) -> float:
        last, self.last = self.last, (cpu_seconds, now)
        if last is None or now <= last[1]:
            return 0.0
        return max(0.0, (cpu_seconds - last[0]) / (now - last[1]) * 100.0)


class CgroupProbe:
    """Reads a cgroup: v2 (memory.current, cpu.stat usage_usec) or v1 (memory.usage_in_bytes, and
    cpuacct.usage from the matching directory of the cpuacct hierarchy when there is one)."""

    def __init__(self, path: str | Path, role: str = "target") -> None:
        self.path = Path(path)
        self.role = role
        self._cpu = _CpuRate()
        if (self.path / "memory.current").is_file():
            self.version = 2
        elif (self.path / "memory.usage_in_bytes").is_file():
            self.version = 1
        else:
            raise ProbeError(f"{self.path} has neither memory.current (cgroup v2) nor memory.usage_in_bytes (v1)")
        self.read((None, None))

    def _cpu_seconds(self) -> float | None:
        if self.version == 2:
            stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines() if line.strip())
            return int(stat["usage_usec"]) / 1e6
        parts = self.path.parts
        if "memory" in parts:
            # v1 keeps CPU accounting in a parallel hierarchy: /sys/fs/cgroup/cpuacct/<same relative path>.
            index = parts.index("memory")
            usage = Path(*parts[:index], "cpuacct", *parts[index + 1:]) / "cpuacct.usage"
            if usage.is_file():
                return int(usage.read_text()) / 1e9
        return None

    def read(self, sockstat: tuple[int | None, int | None]) -> Sample:
        """One sample of the cgroup."""
        now = time.time()
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        memory = int((self.path / name).read_text().split()[0])
        cpu_seconds = self._cpu_seconds()
        cpu = 0.0 if cpu_seconds is None else self._cpu.percent(cpu_seconds, now)
        anon = None
        memory_stat = self.path / "memory.stat"
        if memory_stat.is_file():
            values = dict(line.split()[:2] for line in memory_stat.read_text().splitlines() if line.strip())
            key = "anon" if self.version == 2 else "rss"
            anon = int(values[key]) if key in values else None
        return Sample(now, self.role, 0, memory, anon, cpu, None, None, *sockstat, source=f"cgroup:{self.path}")


def parse_process_metrics(text: str) -> dict[str, float]:
    """The standard process_* samples (resident memory, CPU seconds, open fds) from Prometheus text."""
    wanted = {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"}
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted and not sample.labels:
                found[sample.name] = float(sample.value)
    return found


class MetricsProbe:
    """Scrapes a Prometheus endpoint for process_resident_memory_bytes and process_cpu_seconds_total."""

    def __init__(self, url: str, role: str = "target", timeout: float = 2.0) -> None:
        self.url = url
        self.role = role
        self.timeout = timeout
        self._cpu = _CpuRate()
        first = self._scrape()
        missing = {"process_resident_memory_bytes", "process_cpu_seconds_total"} - set(first)
        if missing:
            raise ProbeError(f"{url} does not expose {', '.join(sorted(missing))}")
        self._cpu.percent(first["process_cpu_seconds_total"], time.time())

    def _scrape(self) -> dict[str, float]:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as response:
                text = response.read().decode("utf-8", errors="replace")
        except OSError as error:
            raise ProbeError(f"cannot scrape {self.url}: {error}") from error
        try:
            return parse_process_metrics(text)
        except ValueError as error:
            raise ProbeError(f"{self.url} does not expose Prometheus text: {error}") from error

    def read(self, sockstat: tuple[int | None, int | None]) -> Sample:
        """One sample from a scrape."""
        values = self._scrape()
        now = time.time()
        cpu = self._cpu.percent(values.get("process_cpu_seconds_total", 0.0), now)
        fds = values.get("process_open_fds")
        return Sample(now, self.role, 0, int(values.get("process_resident_memory_bytes", 0)), None, cpu,
                      None if fds is None else int(fds), None, *sockstat, source=f"prometheus:{self.url}")
