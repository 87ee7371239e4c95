"""A fixed-rate schedule for paced requests (sans-I/O: it says when, the caller sleeps).

Requests are charged from their tick, not from when they went out (coordinated omission): a server that
stalls one request also pays for the ones waiting behind it. Ticks that passed entirely while the caller
was still busy are skipped and counted, never sent as a burst of catch-up requests.
"""

from __future__ import annotations

import random


class Pacer:
    """Ticks every 1/rate seconds on a monotonic clock; rate 0 means closed loop (every call is "now")."""

    def __init__(self, rate: float, start: float) -> None:
        self.period = 1.0 / rate if rate > 0 else 0.0
        self.tick = start

    @classmethod
    def with_random_phase(cls, rate: float, now: float) -> Pacer:
        """A pacer whose first tick falls at a random point of its first period, so users do not act in step."""
        pacer = cls(rate, now)
        pacer.tick += random.uniform(0, pacer.period)
        return pacer

    def next(self, now: float) -> tuple[float, int]:
        """The next tick to act on and how many ticks were skipped because they had already passed."""
        if self.period == 0:
            self.tick = now
            return now, 0
        self.tick += self.period
        skipped = 0
        if now >= self.tick + self.period:
            # Later ticks have come too: act on the latest one that has, skip the ones before it.
            skipped = int((now - self.tick) // self.period)
            self.tick += skipped * self.period
        return self.tick, skipped
