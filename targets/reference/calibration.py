"""Calibration knobs: known costs and faults injected on purpose, so measurements can be checked.

A load tool that reports "34 KiB per connection, p50 35 ms, no loss" is only trustworthy if it also
reports the known answer when there is one. These knobs make the reference target produce one:

Ballast (`--ballast BYTES`, per transport `--ballast-sse/-ws/-chat`)
    Every open streaming connection (sse, ndjson, ws, chat; not polls or long polls) holds BYTES of extra,
    really resident memory from admission until it closes: a private anonymous mapping of its own
    with every page written, unmapped when the connection ends (so RSS goes down again, and freed
    ballast is never reused by anything else). The kernel rounds it up to whole pages: use
    multiples of 4096 for exact figures. The memory-per-connection slope with ballast B minus the
    slope without is B.

Delay (`--delay-ms D`)
    No event leaves the server earlier than D ms after its publish time; the event's `ts` stays the
    publish time, so measured delivery latency shifts by D.
    - Push (sse, ndjson, ws feed, chat: room messages and subscribed channel events): each connection's
      sender waits until `event.ts + D` before writing the event. The wait is relative to each
      event's own ts, so a run of events never accumulates delay, and order is kept (one sender
      per connection, events in queue order; control frames queued behind an event wait with it).
      Held events count against `--queue-size`: rate x D must stay well below it.
    - Polls (/poll, long polls, /state) see the channel as it was D ms ago: an event becomes
      visible (in the events list, the body's `seq`, the ETag) once it is D ms old. A long poll
      that wakes on a new event holds the response until that event is D ms old (within its
      `wait`). Hiding recent events, rather than holding a response until its newest event is
      D ms old, is what makes polling staleness shift by exactly D (D + U(0, interval)) instead
      of becoming max(U(0, interval), D).
    With D = 0 nothing sleeps. With every knob at 0 the original code paths run, unchanged.

Faults (`--drop-every N`, `--duplicate-every N`, `--swap-every N`; 0 = off)
    Defined by seq alone, so the number injected in any window is computable from the seq range a
    client saw: an event is a drop / duplicate / swap candidate when `seq % N == 0`. They apply to
    the sse and ndjson streams, the ws feed and polls (/poll, long polls, /state); never to chat (room
    messages, or channel events subscribed over /ws/chat).
    - drop: the event is never written, on live delivery, SSE Last-Event-ID and ndjson `since` replay, ws `since`
      replay and `resume`, and in every poll response. It stays in the channel buffer (the channel
      seq, ETags and poll cursors are unchanged), but no replay ever sends it: the rule is by seq,
      so with N=10 and 100 events seen, exactly 10 are missing. A long poll woken only by dropped
      events answers with an empty list and the new seq, like one that timed out.
    - duplicate: the event is written twice in a row (in a poll response: listed twice, adjacent).
    - swap: the event is held back and written right after the next event the connection writes
      (without drops that is seq+1: k*N arrives right after k*N+1). In a poll response the pair is
      swapped in the list; a candidate that is the last event of a response has no partner there
      and is listed in place (not counted). A candidate that is itself the partner of a held event
      is not held again (with N=1 the stream is 2,1,4,3,...). A held event whose stream ends
      before a partner arrives is never written.
    Order of the rules per event: drop, then swap, then duplicate (a swapped duplicate candidate is
    written twice after its partner).
    Replay and resume go through the same per-connection rules as live events, in seq order, so a
    resumed subscriber misses the same seqs as everyone else. A resume cursor inside a swapped pair
    behaves like with any server that reorders: SSE clients send the last id they received, which
    after a swapped pair is k*N although k*N+1 came first, so reconnecting right after a swapped
    pair replays k*N+1 once more. Within one ws connection a `resume` skips every seq already
    decided there (written, dropped or held), so apart from the injected duplicates it never
    writes a seq twice; a resume on a new ws connection (`?since=`) behaves like SSE.

Counts
    `rtcap_injected_total{kind="drop"|"duplicate"|"swap", transport="poll"|"longpoll"|"sse"|"ndjson"|"ws"}`
    in /metrics, and the same numbers under "calibration" in /healthz, count what was injected per
    connection or poll response: one drop per event not written to one client, one duplicate per
    extra copy written, one swap per pair written in swapped order. /state counts as "poll".
"""

from __future__ import annotations

import asyncio
import mmap
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .config import TargetConfig
from .metrics import FAULT_KINDS, FAULT_TRANSPORTS, STREAM_TRANSPORTS, Metrics

if TYPE_CHECKING:
    from .hub import Event

PAGE = 4096


def make_ballast(size: int) -> mmap.mmap | bytearray | None:
    """`size` bytes that are resident, not just reserved: every page is written once.

    A private anonymous mapping of its own, so closing it (release_ballast) unmaps it and RSS
    falls back at once; heap memory could stay resident after free() and be reused by later
    allocations, blurring the measured slope. The kernel rounds the mapping up to whole pages.
    Falls back to a bytearray if the mapping fails (vm.max_map_count reached).
    """
    if size <= 0:
        return None
    buf: mmap.mmap | bytearray
    try:
        buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, AttributeError):  # AttributeError: no MAP_PRIVATE/MAP_ANONYMOUS (Windows)
        buf = bytearray(size)  # zero-filled, but write each page explicitly rather than rely on that
    buf[::PAGE] = b"\x01" * len(range(0, size, PAGE))
    return buf


def release_ballast(buf: mmap.mmap | bytearray | None) -> None:
    """Give ballast memory back (unmapped at once; a bytearray is freed when dropped)."""
    if isinstance(buf, mmap.mmap):
        buf.close()


class Injector:
    """Drop / duplicate / swap rules for one connection (or one poll response), in write order."""

    __slots__ = ("_cal", "_transport", "drop", "duplicate", "held", "swap")

    def __init__(self, cal: Calibration, transport: str) -> None:
        self._cal = cal
        self._transport = transport
        self.drop = cal.drop_every
        self.duplicate = cal.duplicate_every
        self.swap = cal.swap_every
        self.held: Event | None = None  # a swap candidate waiting for its partner

    def apply(self, event: Event) -> list[Event]:
        """The events to write now, in order, for `event` arriving next on this connection."""
        seq = event.seq
        if self.drop and seq % self.drop == 0:
            self._cal.count("drop", self._transport)
            return []
        if self.swap and seq % self.swap == 0 and self.held is None:
            self.held = event
            return []
        out = self._copies(event)
        held = self.held
        if held is not None:
            self.held = None
            out += self._copies(held)
            self._cal.count("swap", self._transport)
        return out

    def flush(self) -> list[Event]:
        """Release a held swap candidate in place (end of a poll response): no swap happened."""
        held, self.held = self.held, None
        return self._copies(held) if held is not None else []

    def _copies(self, event: Event) -> list[Event]:
        if self.duplicate and event.seq % self.duplicate == 0:
            self._cal.count("duplicate", self._transport)
            return [event, event]
        return [event]


class Calibration:
    """The calibration knobs of one app, with the counts of what was injected."""

    def __init__(self, config: TargetConfig, metrics: Metrics) -> None:
        self.delay = config.delay_ms / 1000.0
        self.delay_ms = config.delay_ms
        self.drop_every = config.drop_every
        self.duplicate_every = config.duplicate_every
        self.swap_every = config.swap_every
        self.faults = bool(self.drop_every or self.duplicate_every or self.swap_every)
        self.active = config.calibrated
        self.ballast = {t: config.ballast_for(t) for t in STREAM_TRANSPORTS}
        self.counts = {kind: dict.fromkeys(FAULT_TRANSPORTS, 0) for kind in FAULT_KINDS}
        self._counters = metrics.injected

    def count(self, kind: str, transport: str, n: int = 1) -> None:
        """Record `n` injected faults of `kind` on `transport`."""
        self.counts[kind][transport] += n
        self._counters[kind, transport].inc(n)

    def injector(self, transport: str) -> Injector | None:
        """Per-connection fault rules for `transport`, or None when no fault knob is on."""
        return Injector(self, transport) if self.faults else None

    def shape(self, events: Iterable[Event], transport: str) -> list[Event]:
        """One poll response's events with the fault rules applied (no state across responses)."""
        injector = self.injector(transport)
        if injector is None:
            return list(events)
        out: list[Event] = []
        for event in events:
            out += injector.apply(event)
        out += injector.flush()
        return out

    async def wait_due(self, event: Event) -> None:
        """Sleep until `event` is `delay` old (relative to its own ts, so delays never add up)."""
        await sleep_until(event.ts + self.delay)

    def describe(self, held_bytes: int) -> dict[str, Any]:
        """The "calibration" section of /healthz."""
        return {
            "ballast_bytes": dict(self.ballast),
            "ballast_held_bytes": held_bytes,
            "delay_ms": self.delay_ms,
            "drop_every": self.drop_every,
            "duplicate_every": self.duplicate_every,
            "swap_every": self.swap_every,
            "injected": {kind: dict(per) for kind, per in self.counts.items()},
        }


async def sleep_until(when: float, limit: float | None = None) -> None:
    """Sleep until wall-clock time `when` (time.time() scale), or loop time `limit` if sooner.

    Loops because event-loop timers have millisecond granularity and may fire a little early.
    """
    loop = asyncio.get_running_loop()
    while True:
        wait = when - time.time()
        if limit is not None:
            wait = min(wait, limit - loop.time())
        if wait <= 0:
            return
        await asyncio.sleep(wait)
