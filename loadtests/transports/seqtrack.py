"""Loss, duplicate, reordering and restart accounting from per-channel sequence numbers, for one subscriber.

Integer sequences (+1 per event) reveal loss as gaps. Some servers number events with strings that only
increase (e.g. "1700000000:3"); those reveal duplicates and reordering, but not how many events a gap hid.

Memory and time per event are bounded whatever the numbers: a server with sparse ids (epoch milliseconds,
Snowflake ids) opens gaps of trillions. A gap is counted by its size and remembered as a range, never as its
numbers, and only its part within `window` of the highest seq is remembered (for late arrivals), in at most
`max_gaps` ranges.

A **reset** is numbering that started again (a target restarted on the same port counts from 1): an integer
seq below the highest seen, not remembered as missing, is a reset when
  - the event carries a publish time later than every publish time received so far (a repeat carries its
    old time; only a new event can be newer than all), or, for an event without a publish time,
  - it is at most `restart_low` and at least `restart_low` below the highest seen (a restarted sender's
    first numbers; a later first event of a restarted sender without publish times counts as duplicates).
A reset is counted in `resets` and the accounting continues from the new number; nothing is counted lost or
duplicated for it. Text sequences follow the publish-time rule only.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    """What one received sequence number means for the subscriber's stream."""

    IN_ORDER = "in_order"
    GAP = "gap"
    LATE = "late"
    DUPLICATE = "duplicate"
    RESET = "reset"


@dataclass(slots=True)
class SeqTracker:
    """Counts lost, duplicated and reordered events and numbering resets of one subscriber, across reconnects."""

    window: int = 100_000
    max_gaps: int = 1024
    restart_low: int = 10
    first: int | str | None = None
    highest: int | str | None = None
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    received: int = 0
    gaps: int = 0
    resets: int = 0
    newest_ts: float | None = None
    # Missing numbers as sorted, disjoint [start, stop) ranges within the window below `highest`.
    _missing: list[tuple[int, int]] = field(default_factory=list)
    # Text sequences only (made on the first one: a subscriber's state is per held connection, so it stays small).
    _recent: deque | None = None
    _recent_set: set[str] | None = None

    def feed(self, seq: int | str, ts: float | None = None) -> Verdict:
        """Account for one received event (with its publish time, if known); say how it fits the stream."""
        self.received += 1
        if self.first is None:
            self.first = seq
        newer = ts is not None and (self.newest_ts is None or ts > self.newest_ts)
        if ts is not None and newer:
            self.newest_ts = ts
        if isinstance(seq, str):
            return self._feed_text(seq, newer)
        if self.highest is None or not isinstance(self.highest, int):
            # A subscriber joins mid-stream: nothing before its first event counts as lost.
            self.highest = seq
            return Verdict.IN_ORDER
        if seq == self.highest + 1:
            self.highest = seq
            return Verdict.IN_ORDER
        if seq > self.highest:
            self._open_gap(seq)
            return Verdict.GAP
        if self._take_missing(seq):
            # It was counted lost when the gap opened; it arrived late instead.
            self.lost -= 1
            self.reordered += 1
            return Verdict.LATE
        if seq < self.highest and self._is_restart(seq, ts, newer):
            self._restart(seq)
            return Verdict.RESET
        self.duplicated += 1
        return Verdict.DUPLICATE

    def remembered_missing(self) -> int:
        """How many missing numbers are remembered for late arrivals (at most `window`)."""
        return sum(stop - start for start, stop in self._missing)

    def summary(self) -> dict[str, int | str | None]:
        """The subscriber's totals, for a per-subscriber record."""
        return {"first": self.first, "highest": self.highest, "received": self.received, "lost": self.lost,
                "duplicated": self.duplicated, "reordered": self.reordered, "gaps": self.gaps,
                "resets": self.resets}

    def _open_gap(self, seq: int) -> None:
        assert isinstance(self.highest, int)
        self.lost += seq - self.highest - 1
        self.gaps += 1
        # Only the part of the gap within the window can still arrive late; the rest stays lost for good.
        self._missing.append((max(self.highest + 1, seq - self.window), seq))
        self.highest = seq
        floor = seq - self.window
        while self._missing and (self._missing[0][1] <= floor or len(self._missing) > self.max_gaps):
            self._missing.pop(0)
        if self._missing and self._missing[0][0] < floor:
            self._missing[0] = (floor, self._missing[0][1])

    def _take_missing(self, seq: int) -> bool:
        """Remove `seq` from the remembered missing numbers; False if it was not among them."""
        i = bisect_right(self._missing, (seq, float("inf"))) - 1
        if i < 0 or not self._missing[i][0] <= seq < self._missing[i][1]:
            return False
        start, stop = self._missing[i]
        self._missing[i:i + 1] = [r for r in ((start, seq), (seq + 1, stop)) if r[0] < r[1]]
        if len(self._missing) > self.max_gaps:
            self._missing.pop(0)
        return True

    def _is_restart(self, seq: int, ts: float | None, newer: bool) -> bool:
        if ts is not None:
            return newer
        assert isinstance(self.highest, int)
        return seq <= self.restart_low and self.highest - seq >= self.restart_low

    def _restart(self, seq: int | str) -> None:
        self.resets += 1
        self.highest = seq
        self._missing.clear()

    def _feed_text(self, seq: str, newer: bool) -> Verdict:
        # Text sequence numbers: a repeat is a duplicate, a smaller unseen one arrived late (or, newer than
        # everything received, the numbering started again).
        if self._recent is None or self._recent_set is None:
            self._recent, self._recent_set = deque(maxlen=4096), set()
        if seq in self._recent_set:
            self.duplicated += 1
            return Verdict.DUPLICATE
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(seq)
        self._recent_set.add(seq)
        if self.highest is None or not isinstance(self.highest, str) or seq > self.highest:
            self.highest = seq
            return Verdict.IN_ORDER
        if newer:
            self._restart(seq)
            return Verdict.RESET
        self.reordered += 1
        return Verdict.LATE
