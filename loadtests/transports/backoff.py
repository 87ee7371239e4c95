"""Reconnect delays: exponential backoff with full jitter, so a crowd of clients does not reconnect in lockstep."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


STABLE_S = 5.0
"""A connection that stayed up this long was a good one: the reconnect backoff starts afresh after it."""

_SHARED = random.Random()
"""One generator for every connection's jitter: a Random holds about 2.5 KiB of state, a lot per connection."""


@dataclass(slots=True)
class Backoff:
    """Delays of uniform(0, min(cap, base * 2**attempt)) seconds; `reset()` after a good connection."""

    base: float = 0.5
    cap: float = 10.0
    attempt: int = 0
    rng: random.Random = field(default=_SHARED)

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the ceiling up to `cap`."""
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        return self.rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        """Forget earlier failures."""
        self.attempt = 0
