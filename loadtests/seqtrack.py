"""Loss, duplicate and reordering accounting from per-channel sequence numbers, for one subscriber.

Integer sequences (+1 per event) reveal loss as gaps. Some servers number events with strings that only
increase (e.g. "1700000000:3"); those reveal duplicates and reordering, but not how many events a gap hid.
"""

from __future__ import annotations

from collections import deque
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
    first: int | str | None = None
    highest: int | str | None = None
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    received: int = 0
    _missing: set[int] = field(default_factory=set)
    _recent: deque = field(default_factory=lambda: deque(maxlen=4096))
    _recent_set: set[str] = field(default_factory=set)

    def feed(self, seq: int | str) -> Verdict:
        """Account for one received event and say how it fits the stream so far."""
        self.received += 1
        if self.first is None:
            self.first = seq
        if isinstance(seq, str):
            return self._feed_text(seq)
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

    def summary(self) -> dict[str, int | str | None]:
        """The subscriber's totals, for a per-subscriber record."""
        return {"first": self.first, "highest": self.highest, "received": self.received, "lost": self.lost,
                "duplicated": self.duplicated, "reordered": self.reordered}

    def _feed_text(self, seq: str) -> Verdict:
        # Text sequence numbers: a repeat is a duplicate, a smaller unseen one arrived late.
        if seq in self._recent_set:
            self.duplicated += 1
            return Verdict.DUPLICATE
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(seq)
        self._recent_set.add(seq)
        if self.highest is None or seq > self.highest:
            self.highest = seq
            return Verdict.IN_ORDER
        self.reordered += 1
        return Verdict.LATE

    def _forget_old(self) -> None:
        # Bound memory: gaps older than the window stay counted as lost for good.
        if len(self._missing) > self.window:
            floor = self.highest - self.window
            self._missing = {s for s in self._missing if s > floor}
