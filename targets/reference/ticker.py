"""The built-in publisher that emits events at a fixed rate."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from .broker import BrokerUnavailable
from .hub import Hub

log = logging.getLogger("rtcap.target")

# Beyond this lag (event loop saturated) the schedule is re-anchored instead of
# bursting out every missed tick at once.
MAX_LAG_S = 1.0


async def run_ticker(hub: Hub, channels: Sequence[str], rate: float, payload: int) -> None:
    """Publish `rate` events/s with `payload` padding bytes on each channel until cancelled."""
    if rate <= 0 or not channels:
        return
    loop = asyncio.get_running_loop()
    interval = 1.0 / rate
    fields = {"payload": "x" * payload}
    start = loop.time()
    tick = 0
    while True:
        # Deadlines derive from the start time, so sleep overshoot never accumulates into drift.
        lag = loop.time() - (start + tick * interval)
        if lag < 0:
            await asyncio.sleep(-lag)
        elif lag > MAX_LAG_S:
            start, tick = loop.time(), 0
        else:
            await asyncio.sleep(0)  # catching up: still let other tasks run between ticks
        for name in channels:
            try:
                await hub.broker.publish(name, fields)
            except BrokerUnavailable as exc:  # a shared broker is down: this tick is not published anywhere
                log.warning("ticker: %s", exc)
        tick += 1
