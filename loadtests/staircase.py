"""The step-load plan as a pure state machine: ramp to a user count, hold, record the measurement window."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def parse_steps(text: str) -> list[int]:
    """Parse a staircase such as "50,100,150" (or "50:250:50" for start:stop:step) into user counts."""
    text = text.strip()
    try:
        if ":" in text:
            start, stop, step = (int(part) for part in text.split(":"))
            if step <= 0:
                raise ValueError
            steps = list(range(start, stop + 1, step))
        else:
            steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"bad steps {text!r}: give user counts like '50,100,150' or 'start:stop:step' like '50:250:50'") from None
    if not steps or any(n <= 0 for n in steps):
        raise ValueError(f"bad steps {text!r}: every step needs a positive user count")
    return steps


@dataclass(frozen=True)
class Window:
    """One step's measurement window: the hold minus its settle time, in unix seconds."""

    step: int
    users: int
    running_users: int
    t_start: float
    t_end: float
    ramp_s: float
    reached: bool

    def to_json(self) -> dict[str, Any]:
        """The JSON line written for this window."""
        return {
            "step": self.step, "users": self.users, "running_users": self.running_users,
            "t_start": self.t_start, "t_end": self.t_end, "ramp_s": round(self.ramp_s, 3), "reached": self.reached,
        }


@dataclass
class Staircase:
    """Steps of users; each holds `hold` seconds once its users run, the first `settle` seconds unmeasured."""

    steps: list[int]
    hold: float
    settle: float
    spawn_rate: float
    ramp_timeout: float = 60.0
    index: int = 0
    phase: str = "ramp"
    phase_started: float | None = None
    ramp_s: float = 0.0
    reached: bool = False
    windows: list[Window] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a staircase needs at least one step")
        if self.hold <= 0 or self.spawn_rate <= 0:
            raise ValueError("hold and spawn rate must be positive")
        if not 0 <= self.settle < self.hold:
            raise ValueError(f"settle ({self.settle} s) must be at least 0 and shorter than hold ({self.hold} s)")

    def tick(self, now: float, running_users: int) -> tuple[int, float] | None:
        """Advance to `now`; return (users, spawn rate) to ask for, or None when the staircase is done.

        A finished window is appended to `windows` on the tick that ends it.
        """
        if self.phase_started is None:
            self.phase_started = now
        target = self.steps[self.index]
        if self.phase == "ramp":
            self.reached = running_users == target
            if self.reached or now - self.phase_started >= self.ramp_timeout:
                self.ramp_s = now - self.phase_started
                self.phase, self.phase_started = "hold", now
        elif now - self.phase_started >= self.hold:
            self.windows.append(
                Window(self.index, target, running_users, self.phase_started + self.settle, now, self.ramp_s, self.reached)
            )
            self.index += 1
            if self.index >= len(self.steps):
                return None
            self.phase, self.phase_started = "ramp", now
            target = self.steps[self.index]
        return target, self.spawn_rate

    def planned_seconds(self) -> float:
        """Lower bound of the staircase's duration: holds plus ramps at the spawn rate."""
        ramps = sum(abs(b - a) for a, b in zip([0, *self.steps], self.steps)) / self.spawn_rate
        return ramps + self.hold * len(self.steps)
