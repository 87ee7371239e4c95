"""The load generator watching its own schedule: how late does its event loop wake a timer?

Every user in a Locust process shares one gevent loop. When that loop is busy (parsing hundreds of
simultaneous deliveries, say), a message that arrived is read late and its delivery latency grows by
the generator's own backlog, not the target's. A greenlet that asks to sleep `interval` seconds and
measures how much longer it slept sees exactly that backlog; its lag goes out through
`metrics.report_generator_lag`, is recorded per second, and a step whose lag is too high is not counted
as target capacity. Mean CPU alone misses this: the loop can be saturated in bursts at 60% mean CPU.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust import events
from locust.runners import MasterRunner

from rtcap.loadtests.transports import metrics

INTERVAL_S = 0.05
"""How often the monitor wakes: often enough to see bursts, cheap enough (20 wake-ups/s) not to add any."""


class LagMonitor:
    """A greenlet reporting, every `interval` seconds, how late its own sleep ended (ms)."""

    def __init__(self, interval: float = INTERVAL_S) -> None:
        self.interval = interval
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> "LagMonitor":
        """Start watching (once)."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)
        return self

    def _loop(self) -> None:
        while True:
            asked = time.perf_counter()
            gevent.sleep(self.interval)
            metrics.report_generator_lag(max(0.0, (time.perf_counter() - asked - self.interval) * 1000.0))

    def stop(self) -> None:
        """Stop watching."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None


_monitors: dict[int, LagMonitor] = {}


@events.test_start.add_listener
def start_monitor(environment: Any, **_kwargs: Any) -> None:
    """Watch the loop of every process that runs users (not a master, which runs none)."""
    if isinstance(environment.runner, MasterRunner) or id(environment) in _monitors:
        return
    _monitors[id(environment)] = LagMonitor().start()


@events.test_stop.add_listener
def stop_monitor(environment: Any, **_kwargs: Any) -> None:
    """Stop watching when the test stops."""
    monitor = _monitors.pop(id(environment), None)
    if monitor is not None:
        monitor.stop()
