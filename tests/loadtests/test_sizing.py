"""How many load-generating processes a sweep needs: said before the load, from the measured per-process figures."""

from __future__ import annotations

from rtcap.loadtests.run.sizing import EVENTS_PER_CPU_S, HEADROOM, HELD_PER_PROCESS, processes_needed, sizing_note


def test_the_default_sweep_fits_one_process() -> None:
    assert processes_needed([100, 600], ["poll", "sse", "ws"], 1.0) == 1
    assert sizing_note([100, 600], ["poll", "sse", "ws"], 1.0, processes=1) is None


def test_deliveries_past_the_headroom_of_a_core_ask_for_more_processes() -> None:
    per_cpu_s = EVENTS_PER_CPU_S[("sse", False)]
    just_fits = int(HEADROOM * per_cpu_s / 10)  # connections receiving 10 events/s
    assert processes_needed([just_fits], ["sse"], 10.0) == 1
    assert processes_needed([just_fits * 4], ["sse"], 10.0) == 4
    # Several connections per user deliver more per CPU-second: fewer processes for the same step.
    assert processes_needed([just_fits * 4], ["sse"], 10.0, held_per_user=50) < 4


def test_held_connections_past_what_one_process_holds_ask_for_more_even_at_a_trickle() -> None:
    assert processes_needed([HELD_PER_PROCESS * 2 + 1], ["ws"], 0.05) == 3
    note = sizing_note([HELD_PER_PROCESS * 2 + 1], ["ws"], 0.05, processes=2)
    assert note is not None and "about 3 load-generating processes" in note and "this run has 2" in note
    assert sizing_note([HELD_PER_PROCESS * 2 + 1], ["ws"], 0.05, processes=3) is None
    assert processes_needed([1_000_000], ["poll"], 1.0) == 1  # polling is not sized by deliveries
