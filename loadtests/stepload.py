"""Locust step-load shape: add this file to `-f` (e.g. `-f locustfile.py,loadtests/stepload.py`) to run a staircase.

Options: `--steps 50,100,150 --step-hold 20 --step-settle 5 --step-spawn-rate 100`. With `--rtcap-record DIR`
each finished step's measurement window is appended to DIR/windows.jsonl as it ends.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from locust import LoadTestShape

from loadtests import hooks  # noqa: F401  (registers the recorder hooks)
from loadtests.options import Settings
from loadtests.staircase import Staircase, parse_steps


class StepLoadShape(LoadTestShape):
    """A staircase of concurrent users (connections for push transports, viewers for polling)."""

    staircase: Staircase | None = None

    def _plan(self) -> Staircase:
        settings = Settings.of(self.runner.environment)
        if not settings.steps:
            raise ValueError("the step shape needs --steps (e.g. --steps 50,100,150)")
        return Staircase(
            steps=parse_steps(settings.steps), hold=settings.step_hold, settle=settings.step_settle,
            spawn_rate=settings.step_spawn_rate, ramp_timeout=settings.step_ramp_timeout,
        )

    def tick(self) -> tuple[int, float] | None:
        """Ask for the current step's users; record each finished window."""
        if self.staircase is None:
            self.staircase = self._plan()
        done = len(self.staircase.windows)
        answer = self.staircase.tick(time.time(), self.get_current_user_count())
        for window in self.staircase.windows[done:]:
            self._write(window.to_json())
        return answer

    def _write(self, line: dict) -> None:
        record = Settings.of(self.runner.environment).rtcap_record
        if record:
            path = Path(record) / "windows.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")
