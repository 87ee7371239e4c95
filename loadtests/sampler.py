"""Samples processes' memory and CPU (psutil) and the kernel's TCP socket memory, on a background thread."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Sample:
    """One reading of one process."""

    t: float
    role: str
    pid: int
    rss_bytes: int
    uss_bytes: int | None
    cpu_percent: float
    num_fds: int | None
    tcp_established: int | None
    sockstat_tcp_inuse: int | None
    sockstat_tcp_mem_bytes: int | None


def read_sockstat(path: Path = Path("/proc/net/sockstat")) -> tuple[int | None, int | None]:
    """(TCP sockets in use, kernel TCP buffer memory in bytes) for this network namespace, or Nones."""
    try:
        text = path.read_text()
    except OSError:
        return None, None
    for line in text.splitlines():
        if line.startswith("TCP:"):
            fields = line.split()[1:]
            values = dict(zip(fields[::2], (int(v) for v in fields[1::2])))
            mem_pages = values.get("mem")
            return values.get("inuse"), None if mem_pages is None else mem_pages * PAGE_SIZE
    return None, None


class ProcessProbe:
    """Reads one process; CPU percent is measured between two consecutive reads (100 = one core)."""

    def __init__(self, pid: int, role: str, count_connections: bool = True) -> None:
        self.process = psutil.Process(pid)
        self.role = role
        self.count_connections = count_connections
        self.process.cpu_percent(None)  # prime: the first call has no interval to measure against

    def read(self, sockstat: tuple[int | None, int | None]) -> Sample:
        """Take one sample of the process (raises psutil.Error if it is gone)."""
        process = self.process
        with process.oneshot():
            cpu = process.cpu_percent(None)
            try:
                full = process.memory_full_info()
                rss, uss = full.rss, getattr(full, "uss", None)
            except psutil.AccessDenied:
                rss, uss = process.memory_info().rss, None
            try:
                fds = process.num_fds()
            except (psutil.AccessDenied, AttributeError):
                fds = None
        established = None
        if self.count_connections:
            try:
                established = sum(1 for c in process.net_connections(kind="tcp") if c.status == psutil.CONN_ESTABLISHED)
            except psutil.AccessDenied:
                established = None
        return Sample(time.time(), self.role, process.pid, rss, uss, cpu, fds, established, *sockstat)


class Sampler:
    """Samples the probed processes every `interval` seconds until stopped; keeps the samples in memory."""

    def __init__(self, probes: list[ProcessProbe], interval: float = 0.5) -> None:
        if not 0.05 <= interval <= 10:
            raise ValueError(f"sampling interval {interval} s is outside 0.05-10 s")
        self.probes = probes
        self.interval = interval
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtcap-sampler", daemon=True)

    def start(self) -> "Sampler":
        """Start sampling on a background thread."""
        self._thread.start()
        return self

    def _run(self) -> None:
        next_due = time.monotonic()
        while not self._stop.is_set():
            sockstat = read_sockstat()
            for probe in list(self.probes):
                try:
                    self.samples.append(probe.read(sockstat))
                except psutil.Error as error:
                    # The process ended: stop probing it but keep what was sampled.
                    self.errors.append(f"{probe.role} pid {probe.process.pid}: {error.__class__.__name__}")
                    self.probes.remove(probe)
            next_due += self.interval
            self._stop.wait(max(0.0, next_due - time.monotonic()))

    def stop(self) -> list[Sample]:
        """Stop sampling and return the samples taken."""
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples


def sample_rows(samples: list[Sample]) -> list[dict]:
    """Samples as plain dicts, one per row of samples.csv."""
    return [asdict(sample) for sample in samples]
