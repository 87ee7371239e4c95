"""The step-load plan as a pure state machine: ramp to a user count, settle, measure, record the window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_STEPS = 1_000
"""Most steps one staircase may have: even 1 s holds would run for over 16 minutes, and a typo such as
'1:100000000:1' must be refused before a list of that size is built."""
MAX_STEP_USERS = 1_000_000
"""Most users in one step: beyond what one load-generating host holds (ports, file descriptors, memory)."""
_FORMS = "give user counts like '50,100,150' or 'start:stop:step' like '50:250:50'"


def parse_steps(text: str) -> list[int]:
    """Parse a staircase such as "50,100,150" (or "50:250:50" for start:stop:step) into user counts.

    Refuses more than MAX_STEPS steps or MAX_STEP_USERS users in a step, counting a range before building it.
    """
    text = text.strip()
    try:
        if ":" in text:
            start, stop, step = (int(part) for part in text.split(":"))
            if step <= 0:
                raise ValueError
            steps: range | list[int] = range(start, stop + 1, step)  # len() of a range is free; its list is not
        else:
            steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"bad steps {text!r}: {_FORMS}") from None
    if len(steps) > MAX_STEPS:
        raise ValueError(f"bad steps {text!r}: {len(steps):,} steps, at most {MAX_STEPS:,} are allowed")
    if not steps or min(steps) <= 0:
        raise ValueError(f"bad steps {text!r}: every step needs a positive user count")
    if max(steps) > MAX_STEP_USERS:
        raise ValueError(f"bad steps {text!r}: a step of {max(steps):,} users, at most {MAX_STEP_USERS:,} are allowed")
    return list(steps)


@dataclass(frozen=True)
class Window:
    """One step's measurement window (after its settle time), in unix seconds.

    `settled` is True when the settle criterion was met, False when the maximum settle time ran out first,
    None when the settle time was fixed.
    """

    step: int
    users: int
    running_users: int
    t_start: float
    t_end: float
    ramp_s: float
    reached: bool
    settle_s: float = 0.0
    settled: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON line written for this window."""
        return {
            "step": self.step, "users": self.users, "running_users": self.running_users,
            "t_start": self.t_start, "t_end": self.t_end, "ramp_s": round(self.ramp_s, 3), "reached": self.reached,
            "settle_s": round(self.settle_s, 3), "settled": self.settled,
        }


@dataclass
class Staircase:
    """Steps of users. Once a step's users run it settles, then measures for `hold - settle` seconds.

    The settle lasts `settle` seconds; with `settle_max` and a `settled(now, since)` test passed to `tick`,
    it lasts until the test says yes (at least `settle`, at most `settle_max` seconds).
    """

    steps: list[int]
    hold: float
    settle: float
    spawn_rate: float
    ramp_timeout: float = 60.0
    settle_max: float | None = None
    index: int = 0
    phase: str = "ramp"
    phase_started: float | None = None
    ramp_s: float = 0.0
    reached: bool = False
    settle_s: float = 0.0
    settled: bool | None = None
    windows: list[Window] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a staircase needs at least one step")
        if self.hold <= 0 or self.spawn_rate <= 0:
            raise ValueError("hold and spawn rate must be positive")
        if not 0 <= self.settle < self.hold:
            raise ValueError(f"settle ({self.settle} s) must be at least 0 and shorter than hold ({self.hold} s)")
        if self.settle_max is not None and self.settle_max < self.settle:
            raise ValueError(f"maximum settle ({self.settle_max} s) must be at least the settle time ({self.settle} s)")

    def tick(self, now: float, running_users: int,
             settled: Callable[[float, float], bool] | None = None) -> tuple[int, float] | None:
        """Advance to `now`; return (users, spawn rate) to ask for, or None when the staircase is done.

        `settled(now, since)` says whether the target has settled since the settle phase began at `since`.
        A finished window is appended to `windows` on the tick that ends it.
        """
        if self.phase_started is None:
            self.phase_started = now
        target = self.steps[self.index]
        elapsed = now - self.phase_started
        if self.phase == "ramp":
            self.reached = running_users == target
            if self.reached or elapsed >= self.ramp_timeout:
                self.ramp_s = elapsed
                self.phase, self.phase_started = "settle", now
        elif self.phase == "settle":
            if elapsed >= self.settle:
                adaptive = self.settle_max is not None and settled is not None
                if not adaptive:
                    self._measure(self.phase_started + self.settle, None)  # a fixed settle ends on time
                elif settled(now, self.phase_started):
                    self._measure(now, True)
                elif elapsed >= self.settle_max:
                    self._measure(now, False)  # measured anyway; the window says it never settled
        elif elapsed >= self.hold - self.settle:
            self.windows.append(Window(self.index, target, running_users, self.phase_started, now, self.ramp_s,
                                       self.reached, self.settle_s, self.settled))
            self.index += 1
            if self.index >= len(self.steps):
                return None
            self.phase, self.phase_started = "ramp", now
            target = self.steps[self.index]
        return target, self.spawn_rate

    def _measure(self, start: float, settled: bool | None) -> None:
        assert self.phase_started is not None
        self.settle_s, self.settled = start - self.phase_started, settled
        self.phase, self.phase_started = "measure", start

    def planned_seconds(self) -> float:
        """Lower bound of the staircase's duration: holds plus ramps at the spawn rate."""
        ramps = sum(abs(b - a) for a, b in zip([0, *self.steps], self.steps)) / self.spawn_rate
        return ramps + self.hold * len(self.steps)
