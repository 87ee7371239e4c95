"""Samples the probed processes (memory, CPU, connections) and the kernel's TCP socket memory on a background
thread. What one reading of a process is lives in process_probe.py; probes.py reads cgroups and /metrics."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from rtcap.reports.schema import TARGET_ROLE

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
    tcp_outgoing: int | None = None
    """Established sockets whose local port is not one the process listens on: its own client connections
    (to a backend, a broker), which are not the inbound connections whose cost is measured."""
    state: str | None = None
    """psutil's status of the (main) process: "stopped" means it is frozen (SIGSTOP) and serves nothing."""
    source: str | None = None
    """Where the reading came from: PSUTIL (this host), "agent:<url>" (`rtcap agent` on the target's host),
    "prometheus:<url>"; None when not recorded (samples.csv's `source` column)."""


PSUTIL = "psutil"
"""The source of readings taken on this host with psutil."""


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


class TargetGone(psutil.NoSuchProcess):
    """The probed process exited or is a zombie (killed, not yet reaped by its parent)."""


class NoReading(Exception):
    """This read got nothing (a remote agent did not answer in time), but nothing says the target is gone:
    the sampler records no sample for it and tries again on the next tick. Never a zero reading: a window
    without any target sample is flagged, not measured as an idle target."""


class Sampler:
    """Samples the probed processes every `interval` seconds until stopped; keeps the samples in memory.

    With `live_path`, each target sample is also appended there as a JSON line ({"t", "rss_bytes"}) as it
    is taken, so the step shape in the Locust process can tell when the target's memory has settled.
    """

    def __init__(self, probes: list[Any], interval: float = 0.5, live_path: Path | None = None) -> None:
        if not 0.05 <= interval <= 10:
            raise ValueError(f"sampling interval {interval} s is outside 0.05-10 s")
        self.probes = probes
        self.interval = interval
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.gone: dict[str, float] = {}
        """When each role's probe last failed for good (its process exited): role -> unix time."""
        self.missed: dict[str, int] = {}
        """Reads per role that got nothing (NoReading: an agent that did not answer); no sample was recorded."""
        self.last_missed: dict[str, str] = {}
        self.live_path = live_path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtcap-sampler", daemon=True)

    def start(self) -> "Sampler":
        """Start sampling on a background thread."""
        self._thread.start()
        return self

    def _run(self) -> None:
        live = self.live_path.open("a", encoding="utf-8") if self.live_path is not None else None
        try:
            next_due = time.monotonic()
            while not self._stop.is_set():
                sockstat = read_sockstat()
                for probe in list(self.probes):
                    try:
                        if getattr(probe, "per_process", False):
                            taken = probe.read_each(sockstat)
                        elif hasattr(probe, "read_all"):
                            taken = probe.read_all(sockstat)  # the sum, and each member's share of a deployment
                        else:
                            taken = [probe.read(sockstat)]
                    except NoReading as error:
                        # No sample for this tick, and the probe stays: the agent may answer the next one.
                        self.missed[probe.role] = self.missed.get(probe.role, 0) + 1
                        self.last_missed[probe.role] = str(error)
                        continue
                    except (psutil.Error, OSError, RuntimeError) as error:
                        # The process ended: stop probing it but keep what was sampled.
                        self.errors.append(f"{probe.role}: {error.__class__.__name__}: {error}")
                        self.gone.setdefault(probe.role, time.time())
                        self.probes.remove(probe)
                        continue
                    self.samples.extend(taken)
                    if live is not None:
                        for sample in taken:
                            if sample.role == TARGET_ROLE:
                                live.write(json.dumps({"t": sample.t, "rss_bytes": sample.rss_bytes}) + "\n")
                if live is not None:
                    live.flush()
                next_due += self.interval
                self._stop.wait(max(0.0, next_due - time.monotonic()))
        finally:
            if live is not None:
                live.close()

    def stop(self) -> list[Sample]:
        """Stop sampling and return the samples taken."""
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples


def sample_rows(samples: list[Sample]) -> list[dict]:
    """Samples as plain dicts, one per row of samples.csv."""
    return [asdict(sample) for sample in samples]
