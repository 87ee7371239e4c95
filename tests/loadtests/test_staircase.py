"""The step plan as a state machine, driven with explicit times."""

import pytest

from rtcap.loadtests.generator.staircase import Staircase, parse_steps


def test_parse_steps_forms() -> None:
    assert parse_steps("50, 100,150") == [50, 100, 150]
    assert parse_steps("50:250:50") == [50, 100, 150, 200, 250]
    for bad in ("", "a,b", "10,-5", "1:5:0", "0"):
        with pytest.raises(ValueError, match="bad steps"):
            parse_steps(bad)


def test_holds_start_when_users_are_running_and_windows_skip_settle() -> None:
    plan = Staircase(steps=[10, 20], hold=10, settle=3, spawn_rate=5)
    assert plan.tick(100.0, 0) == (10, 5)
    assert plan.tick(101.0, 6) == (10, 5)  # still ramping
    assert plan.tick(102.0, 10) == (10, 5)  # reached: settle starts at 102
    assert plan.tick(105.5, 10) == (10, 5)  # settle over at 105: measuring
    assert plan.tick(111.0, 10) == (10, 5)
    assert plan.tick(112.0, 10) == (20, 5)  # hold over: next step
    assert plan.windows[0].t_start == 105.0 and plan.windows[0].t_end == 112.0
    assert plan.windows[0].reached and plan.windows[0].ramp_s == 2.0
    plan.tick(113.0, 20)
    plan.tick(116.0, 20)
    assert plan.tick(123.0, 20) is None
    assert [w.step for w in plan.windows] == [0, 1]


def test_ramp_timeout_moves_on_and_marks_the_step() -> None:
    plan = Staircase(steps=[100], hold=5, settle=1, spawn_rate=10, ramp_timeout=4)
    plan.tick(0.0, 0)
    plan.tick(4.0, 37)
    assert plan.phase == "settle"
    plan.tick(5.0, 37)
    assert plan.tick(9.0, 37) is None
    assert not plan.windows[0].reached and plan.windows[0].running_users == 37


def test_invalid_plans_are_rejected() -> None:
    with pytest.raises(ValueError):
        Staircase(steps=[], hold=1, settle=0, spawn_rate=1)
    with pytest.raises(ValueError, match="settle"):
        Staircase(steps=[1], hold=5, settle=5, spawn_rate=1)


def test_planned_seconds_counts_ramps_and_holds() -> None:
    assert Staircase(steps=[10, 20], hold=5, settle=1, spawn_rate=10).planned_seconds() == 2 + 10


def test_adaptive_settle_waits_for_the_target_then_measures_a_fixed_window() -> None:
    calls: list[tuple[float, float]] = []

    def settled_after_107(now: float, since: float) -> bool:
        calls.append((now, since))
        return now >= 107.0

    plan = Staircase(steps=[10], hold=10, settle=2, spawn_rate=5, settle_max=30)
    plan.tick(100.0, 10)  # reached at once: settle from 100
    plan.tick(101.0, 10, settled_after_107)
    assert calls == []  # not asked before the minimum settle
    for now in (102.0, 104.0, 106.0):
        plan.tick(now, 10, settled_after_107)
        assert plan.phase == "settle"
    plan.tick(107.0, 10, settled_after_107)
    assert plan.phase == "measure" and calls[-1] == (107.0, 100.0)
    plan.tick(114.0, 10, settled_after_107)
    assert plan.tick(115.0, 10, settled_after_107) is None  # measured hold - settle = 8 s
    window = plan.windows[0]
    assert (window.t_start, window.t_end, window.settle_s, window.settled) == (107.0, 115.0, 7.0, True)
    assert window.to_json()["settled"] is True


def test_a_target_that_never_settles_is_measured_after_settle_max_and_marked() -> None:
    plan = Staircase(steps=[10], hold=5, settle=1, spawn_rate=5, settle_max=4)
    plan.tick(0.0, 10)
    for now in (1.0, 2.0, 3.0):
        plan.tick(now, 10, lambda now, since: False)
    assert plan.phase == "settle"
    plan.tick(4.0, 10, lambda now, since: False)
    assert plan.phase == "measure"
    assert plan.tick(8.0, 10) is None
    assert plan.windows[0].settled is False and plan.windows[0].settle_s == 4.0


def test_settle_max_below_settle_is_rejected() -> None:
    with pytest.raises(ValueError, match="maximum settle"):
        Staircase(steps=[1], hold=5, settle=2, spawn_rate=1, settle_max=1)
