"""Locust step-load shape: add this file to `-f` (e.g. `-f locustfile.py,loadtests/generator/stepload.py`) to run a staircase.

Options: `--steps 50,100,150 --step-hold 20 --step-settle 5 --step-spawn-rate 100`. With `--rtcap-record DIR`
each finished step's measurement window is appended to DIR/windows.jsonl as it ends.

With `--step-settle-max S --step-settle-samples FILE` (what `rtcap run` passes), each step waits after its
users run until the target's memory has settled by `settle.SettleRule` (at least --step-settle, at most S
seconds), reading the target's samples from FILE as the sampler appends them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from locust import LoadTestShape

from rtcap.loadtests.generator import hooks, lag  # noqa: F401  (registers the recorder hooks and the generator lag monitor)
from rtcap.loadtests.generator.options import Settings
from rtcap.loadtests.generator.settle import LiveSamples, SettleRule
from rtcap.loadtests.generator.staircase import Staircase, parse_steps
from rtcap.reports import schema


class StepLoadShape(LoadTestShape):
    """A staircase of concurrent users (connections for push transports, viewers for polling)."""

    staircase: Staircase | None = None
    live: LiveSamples | None = None
    per_user = 1
    rule = SettleRule()

    def _plan(self) -> Staircase:
        settings = Settings.of(self.runner.environment)
        if not settings.steps:
            raise ValueError("the step shape needs --steps (e.g. --steps 50,100,150)")
        # Waiting for the target's memory to settle needs its samples (rtcap run records them); without them
        # each step settles for the fixed --step-settle.
        settle_max = (settings.step_settle_max or None) if settings.step_settle_samples else None
        if settle_max is not None:
            self.live = LiveSamples(settings.step_settle_samples)
        # Steps count connections; with --held-per-user K each Locust user holds K of them (transports/crowd.py).
        per_user = self.per_user = settings.held_per_user
        return Staircase(
            steps=[-(-step // per_user) for step in parse_steps(settings.steps)], hold=settings.step_hold,
            settle=settings.step_settle, spawn_rate=max(1.0, settings.step_spawn_rate / per_user),
            ramp_timeout=settings.step_ramp_timeout, settle_max=settle_max,
        )

    def reset_time(self) -> None:
        """Locust calls this as each test starts: a second test from the web UI climbs the staircase afresh."""
        super().reset_time()
        self.staircase = None

    def _settled(self, now: float, since: float) -> bool:
        assert self.live is not None
        return self.rule.settled(self.live.read(), now, since)

    def tick(self) -> tuple[int, float] | None:
        """Ask for the current step's users; record each finished window."""
        if self.staircase is None:
            self.staircase = self._plan()
        done = len(self.staircase.windows)
        settled = self._settled if self.live is not None else None
        answer = self.staircase.tick(time.time(), self.get_current_user_count(), settled)
        for window in self.staircase.windows[done:]:
            line = window.to_json()
            for key in ("users", "running_users"):  # connections, as the steps were given
                if line.get(key) is not None:
                    line[key] *= self.per_user
            self._write(line)
        return answer

    def _write(self, line: dict) -> None:
        record = Settings.of(self.runner.environment).rtcap_record
        if record:
            path = Path(record) / schema.WINDOWS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")
