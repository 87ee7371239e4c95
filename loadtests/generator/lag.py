"""The load generator watching itself: how late does its event loop wake a timer, and (on a Locust master)
how busy are its workers and are they all still there?

Every user in a Locust process shares one gevent loop. When that loop is busy (parsing hundreds of
simultaneous deliveries, say), a message that arrived is read late and its delivery latency grows by
the generator's own backlog, not the target's. A greenlet that asks to sleep `interval` seconds and
measures how much longer it slept sees exactly that backlog; its lag goes out through
`metrics.report_generator_lag`, is recorded per second, and a step whose lag is too high is not counted
as target capacity. Mean CPU alone misses this: the loop can be saturated in bursts at 60% mean CPU.

A master's workers may run on other machines, where the orchestrator cannot sample them: `WorkerWatch` puts
each worker's CPU from Locust's own heartbeats (refreshed every CPU_MONITOR_INTERVAL, 10 s, on the worker) and
its user count into the timeline's "generator" rows, under "workers": {client id: {...}}; hooks.py files each
worker's timer lag there too. A worker that goes missing (no heartbeat for ~3 s) or quits while the test runs
is written there as lost, with the users it held and when it was last heard of, so the collect stage voids
the steps it was part of; `--on-worker-loss stop` (the default) also ends the test.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust import events
from locust.runners import STATE_MISSING, MasterRunner

from rtcap.loadtests.generator import hooks
from rtcap.loadtests.generator.options import Settings
from rtcap.loadtests.generator.recorder import GENERATOR
from rtcap.loadtests.transports import metrics

logger = logging.getLogger(__name__)

INTERVAL_S = 0.05
"""How often the monitor wakes: often enough to see bursts, cheap enough (20 wake-ups/s) not to add any."""
WATCH_INTERVAL_S = 1.0
"""How often a master reads its workers' state (Locust's heartbeats come once a second)."""


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


class WorkerWatch:
    """A master's greenlet writing, once a second, each worker's heartbeat CPU and users, and each worker lost
    while the test runs (missing, or quit), into the master's timeline."""

    def __init__(self, environment: Any, interval: float = WATCH_INTERVAL_S) -> None:
        self.environment = environment
        self.interval = interval
        self.users: dict[str, int] = {}
        """The users each worker was last seen holding (Locust forgets them once it marks a worker missing)."""
        self.heard: dict[str, float] = {}
        self.lost: set[str] = set()
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> "WorkerWatch":
        """Start watching (once)."""
        if self._greenlet is None:
            self.environment.events.heartbeat_sent.add_listener(self.on_heartbeat)
            self._greenlet = gevent.spawn(self._loop)
        return self

    def stop(self) -> None:
        """Stop watching (the workers leaving after the test are no loss)."""
        if self._greenlet is not None:
            self.environment.events.heartbeat_sent.remove_listener(self.on_heartbeat)
            if self._greenlet is not gevent.getcurrent():
                self._greenlet.kill(block=False)
            self._greenlet = None

    def on_heartbeat(self, client_id: str, timestamp: float, **_kwargs: Any) -> None:
        """Note when each worker was last heard of."""
        self.heard[client_id] = timestamp

    def _loop(self) -> None:
        while True:
            gevent.sleep(self.interval)
            self.tick(time.time())

    def tick(self, now: float) -> None:
        """Record every worker's state now; a worker lost since the last tick is recorded once."""
        runner = self.environment.runner
        present: dict[str, Any] = {}
        for node in list(runner.clients.values()):
            if node.state == STATE_MISSING:
                continue
            present[node.id] = {"cpu_percent": float(node.cpu_usage), "users": node.user_count}
            self.users[node.id] = node.user_count
            self.heard.setdefault(node.id, now)
        gone = {worker: {"lost_at": now, "last_seen": self.heard.get(worker, now), "users": users}
                for worker, users in self.users.items() if worker not in present and worker not in self.lost}
        if present:
            self._record(int(now), present)
        for worker, loss in gone.items():
            self.lost.add(worker)
            logger.error("rtcap: worker %s was lost while it held %d users (last heard of %.1f s ago); the step it "
                         "was part of is not counted", worker, loss["users"], now - loss["last_seen"])
            self._record(int(loss["last_seen"]), {worker: loss})
        if gone and Settings.of(self.environment).on_worker_loss == "stop":
            logger.error("rtcap: stopping the test (--on-worker-loss stop)")
            self.stop()
            if getattr(self.environment.parsed_options, "headless", False):
                runner.quit()
            else:
                runner.stop()

    def _record(self, second: int, workers: dict[str, dict[str, Any]]) -> None:
        recorder = hooks.recorder_of(self.environment)
        if recorder is not None:
            recorder.receive([{"t": second, "transport": GENERATOR, "lag_samples": 0, "workers": workers}])


_monitors: dict[int, LagMonitor | WorkerWatch] = {}


@events.test_start.add_listener
def start_monitor(environment: Any, **_kwargs: Any) -> None:
    """Watch the loop of every process that runs users, and a master's workers."""
    if id(environment) in _monitors:
        return
    if isinstance(environment.runner, MasterRunner):
        _monitors[id(environment)] = WorkerWatch(environment).start()
    else:
        _monitors[id(environment)] = LagMonitor().start()


@events.test_stop.add_listener
def stop_monitor(environment: Any, **_kwargs: Any) -> None:
    """Stop watching when the test stops."""
    monitor = _monitors.pop(id(environment), None)
    if monitor is not None:
        monitor.stop()
