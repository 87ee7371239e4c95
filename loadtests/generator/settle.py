"""When has the target's memory settled after a step? A stated criterion, and a reader for live samples.

A step's measurement window must not open while the target is still allocating for the connections it
just accepted (buffers, lazy imports, allocator growth): the memory fit would take a slope for a plateau.
The rule is pure (samples in, yes/no out) so it is tested with numbers; `LiveSamples` tails the JSON-lines
file the sampler writes during a run, which is how the step shape (inside Locust) sees the target.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

KIB = 1024


@dataclass(frozen=True)
class SettleRule:
    """Settled = over the last `span_s` seconds the target's RSS moved by at most
    max(`tolerance_bytes`, `tolerance_fraction` x RSS), seen in at least `min_samples` samples."""

    span_s: float = 2.0
    min_samples: int = 3
    tolerance_bytes: int = 128 * KIB
    tolerance_fraction: float = 0.002

    def __post_init__(self) -> None:
        if self.span_s <= 0 or self.min_samples < 2 or self.tolerance_bytes < 0 or self.tolerance_fraction < 0:
            raise ValueError(f"bad settle rule {self}: span > 0, at least 2 samples, tolerances >= 0")

    def settled(self, samples: Iterable[tuple[float, float]], now: float, since: float) -> bool:
        """True when the (t, rss_bytes) samples taken after `since` and within `span_s` of `now` are flat."""
        recent = [(t, rss) for t, rss in samples if t >= since and now - self.span_s - 1e-9 <= t <= now]
        if len(recent) < self.min_samples:
            return False
        # The samples must cover most of the span, or two quick readings could pass for a plateau.
        if recent[-1][0] - recent[0][0] < 0.75 * self.span_s:
            return False
        values = [rss for _, rss in recent]
        return max(values) - min(values) <= max(self.tolerance_bytes, self.tolerance_fraction * max(values))

    def describe(self) -> str:
        """The criterion in words, for meta.json and the report."""
        return (f"target RSS moved by at most max({self.tolerance_bytes // KIB} KiB, "
                f"{self.tolerance_fraction * 100:g}% of RSS) over the last {self.span_s:g} s "
                f"(>= {self.min_samples} samples)")


class LiveSamples:
    """Reads (t, rss_bytes) pairs appended to a JSON-lines file by another process, keeping the last few."""

    def __init__(self, path: Path | str, keep: int = 600) -> None:
        self.path = Path(path)
        self.samples: deque[tuple[float, float]] = deque(maxlen=keep)
        self._offset = 0
        self._partial = b""

    def read(self) -> list[tuple[float, float]]:
        """Take in whatever complete lines were appended since the last call; return the samples kept."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return list(self.samples)
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # a line still being written stays until its newline arrives
        for line in lines:
            try:
                row = json.loads(line)
                self.samples.append((float(row["t"]), float(row["rss_bytes"])))
            except (ValueError, KeyError, TypeError):
                continue  # a malformed line is skipped, not fatal: the next samples still count
        return list(self.samples)
