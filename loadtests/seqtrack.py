"""Loss, duplicate and reordering accounting from per-channel sequence numbers, for one subscriber."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    """What one received sequence number means for the subscriber's stream."""

    IN_ORDER = "in_order"
    GAP = "gap"
    LATE = "late"
    DUPLICATE = "duplicate"


@dataclass
class SeqTracker:
    """Counts lost, duplicated and reordered events of one subscriber, across its reconnects."""

    window: int = 100_000
    highest: int | None = None
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    received: int = 0
    _missing: set[int] = field(default_factory=set)

    def feed(self, seq: int) -> Verdict:
        """Account for one received event and say how it fits the stream so far."""
        self.received += 1
        if self.highest is None:
            # A subscriber joins mid-stream: nothing before its first event counts as lost.
            self.highest = seq
            return Verdict.IN_ORDER
        if seq == self.highest + 1:
            self.highest = seq
            return Verdict.IN_ORDER
        if seq > self.highest:
            gap = range(self.highest + 1, seq)
            self.lost += len(gap)
            self._missing.update(gap)
            self.highest = seq
            self._forget_old()
            return Verdict.GAP
        if seq in self._missing:
            # It was counted lost when the gap opened; it arrived late instead.
            self._missing.discard(seq)
            self.lost -= 1
            self.reordered += 1
            return Verdict.LATE
        self.duplicated += 1
        return Verdict.DUPLICATE

    def _forget_old(self) -> None:
        # Bound memory: gaps older than the window stay counted as lost for good.
        if len(self._missing) > self.window:
            floor = self.highest - self.window
            self._missing = {s for s in self._missing if s > floor}
