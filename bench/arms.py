"""What bench/generator.py measures: the plan every arm climbs, a step, an arm, and the nchan it loads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtcap.bench.truth import ROOT

NCHAN_EXAMPLE = ROOT / "targets" / "examples" / "nchan" / "adapter.toml"
NCHAN_CONNECTIONS = 19_500
"""nginx worker_connections for the benchmark's nchan (the example's default, 4,096, would cap every arm)."""


@dataclass(frozen=True)
class Plan:
    """The staircase every arm climbs, and the load on it."""

    steps: tuple[int, ...] = (1000, 3000, 6000)
    rate: float = 10.0
    hold: float = 20.0
    transports: str = "ws,sse,poll"
    held_per_user: int = 50
    """The crowd arm: connections each ws/sse listener holds (--held-per-user)."""
    many: tuple[int, ...] = (5000, 10000, 19000)
    """The held arm: connections one process holds at `many_rate` events/s each."""
    many_rate: float = 0.05
    poll_interval: float = 1.0
    """Seconds between two polls of one viewer, rtcap's (--poll-interval) and the stock poll client's alike."""
    adapter: Path = NCHAN_EXAMPLE
    """The target: `main` passes `nchan_adapter`'s copy, which allows NCHAN_CONNECTIONS."""


QUICK = Plan(steps=(500, 1500), rate=10.0, hold=10.0, many=(2000, 4000))
NOFILE = 65536
"""Open files the held arm may use (raised for this process and its children: root may raise the hard limit)."""


@dataclass
class Step:
    """What one generator did while it held one step."""

    connections: int
    seconds: float
    rss_bytes: float | None
    cpu_s: float | None
    delivered: float
    requests: float = 0.0
    valid: bool | None = None
    flags: str = ""

    @property
    def events_per_cpu_s(self) -> float | None:
        return self.delivered / self.cpu_s if self.cpu_s else None

    @property
    def requests_per_cpu_s(self) -> float | None:
        return self.requests / self.cpu_s if self.cpu_s else None


@dataclass
class Arm:
    """One generator's steps, or why it was not measured."""

    name: str
    steps: list[Step] = field(default_factory=list)
    skipped: str | None = None

    def bytes_per_connection(self) -> float | None:
        """Least-squares slope of the generator's RSS against the connections it held."""
        points = [(s.connections, s.rss_bytes) for s in self.steps if s.rss_bytes is not None]
        if len({c for c, _ in points}) < 2:
            return None
        slope, _intercept = np.polyfit([c for c, _ in points], [r for _, r in points], 1)
        return float(slope)

    def largest_valid(self) -> int | None:
        return max((s.connections for s in self.steps if s.valid), default=None)

    def summary(self) -> dict[str, Any]:
        per_conn = self.bytes_per_connection()
        return {"arm": self.name, "skipped": self.skipped, "bytes_per_connection": per_conn,
                "largest_valid_step": self.largest_valid(),
                "steps": [{**asdict(s), "events_per_cpu_s": s.events_per_cpu_s,
                           "requests_per_cpu_s": s.requests_per_cpu_s} for s in self.steps]}


def nchan_adapter(work: Path) -> Path:
    """The nchan example's adapter, starting nginx with NCHAN_CONNECTIONS worker connections."""
    text = NCHAN_EXAMPLE.read_text(encoding="utf-8")
    start = '"--port", "{port}"]'
    if start not in text:
        raise SystemExit(f"{NCHAN_EXAMPLE}: its start command changed; cannot raise worker_connections")
    path = work / "nchan-adapter.toml"
    path.write_text(text.replace(start, f'"--port", "{{port}}", "--worker-connections", "{NCHAN_CONNECTIONS}"]'),
                    encoding="utf-8")
    return path
