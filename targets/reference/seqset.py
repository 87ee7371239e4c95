"""A compact set of sequence numbers, used to never send one event twice on a connection."""

from __future__ import annotations

from bisect import bisect_right


class SeqSet:
    """Integers stored as sorted, disjoint, inclusive runs; a live stream stays a single run."""

    __slots__ = ("_hi", "_lo")

    def __init__(self) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []

    def __contains__(self, n: object) -> bool:
        if not isinstance(n, int):
            return False
        i = bisect_right(self._lo, n) - 1
        return i >= 0 and n <= self._hi[i]

    def add(self, n: int) -> None:
        """Insert `n`, merging runs it touches."""
        lo, hi = self._lo, self._hi
        if hi and hi[-1] + 1 == n:  # fast path: the next live event
            hi[-1] = n
            return
        i = bisect_right(lo, n) - 1
        if i >= 0 and n <= hi[i]:
            return
        joins_left = i >= 0 and hi[i] + 1 == n
        joins_right = i + 1 < len(lo) and lo[i + 1] - 1 == n
        if joins_left and joins_right:
            hi[i] = hi[i + 1]
            del lo[i + 1], hi[i + 1]
        elif joins_left:
            hi[i] = n
        elif joins_right:
            lo[i + 1] = n
        else:
            lo.insert(i + 1, n)
            hi.insert(i + 1, n)

    @property
    def runs(self) -> list[tuple[int, int]]:
        """The inclusive (low, high) runs, ascending."""
        return list(zip(self._lo, self._hi, strict=True))

    @property
    def last(self) -> int:
        """The largest member, or 0 when empty."""
        return self._hi[-1] if self._hi else 0
