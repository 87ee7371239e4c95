"""How many load-generating processes a sweep needs, from what one process was measured to do on this kind of
machine, so `rtcap run` can say so before the load instead of after a step was voided.

A process is held back by two things (bench/generator.py and bench/scale.py measure both):
- delivered events per CPU-second: the largest step's events per second (connections x the rate each one
  receives) must stay under HEADROOM of a core per process;
- held connections: past HELD_PER_PROCESS, each event's burst of deliveries makes the process's timers late
  (lag voids the step) even when its average CPU is low.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

HEADROOM = 0.7
"""Share of one core a generator process may spend on deliveries before its step is at risk (90% voids it)."""

EVENTS_PER_CPU_S = {("ws", False): 28_000, ("sse", False): 18_000, ("ws", True): 46_000, ("sse", True): 34_000}
"""Delivered events per CPU-second of one process, by (transport, several connections per user): the lower
figures of `python -m rtcap.bench.generator` on 2 cores against nginx+nchan (README, "What the generator
costs"; the SSE crowd's since its body decoding left h11, `--arms crowd --transports sse`). Other transports are request-bound, not delivery-bound, and are not sized here."""

HELD_PER_PROCESS = 16_000
"""Held connections one process kept before its timer lag voided a step (0.05 events/s each, one event every
20 s to all at once: `python -m rtcap.bench.scale --arms one-process`, README "Several machines")."""


def processes_needed(steps: Sequence[int], transports: Sequence[str], rate: float, held_per_user: int = 1) -> int:
    """The fewest generator processes for the largest step of `transports` receiving `rate` events/s each."""
    largest = max(steps, default=0)
    needed = 1
    for transport in transports:
        per_cpu_s = EVENTS_PER_CPU_S.get((transport, held_per_user > 1))
        if per_cpu_s is None:
            continue
        needed = max(needed, math.ceil(largest * rate / (HEADROOM * per_cpu_s)),
                     math.ceil(largest / HELD_PER_PROCESS))
    return needed


def sizing_note(steps: Sequence[int], transports: Sequence[str], rate: float, processes: int,
                held_per_user: int = 1) -> str | None:
    """A note when the sweep's largest step likely needs more generator processes than it has; else None."""
    needed = processes_needed(steps, transports, rate, held_per_user)
    if needed <= processes:
        return None
    return (f"the largest step, {max(steps):,} connections receiving {rate:g} events/s each, likely needs about "
            f"{needed} load-generating processes (one process was measured to deliver about "
            f"{min(EVENTS_PER_CPU_S.values()):,}-{max(EVENTS_PER_CPU_S.values()):,} events per CPU-second and to hold "
            f"about {HELD_PER_PROCESS:,} connections); this run has {processes}: give --processes {needed} (at most one "
            "per core) or --expect-workers with machines to match, or its top steps may be void")
