"""The fixed-rate schedule of paced requests (sans-I/O)."""

import pytest

from rtcap.loadtests.transports.pacer import Pacer


def test_ticks_follow_the_rate_and_skip_what_passed_while_busy() -> None:
    pacer = Pacer(10, start=100.0)
    assert pacer.next(100.01) == (pytest.approx(100.1), 0)
    assert pacer.next(100.15) == (pytest.approx(100.2), 0)
    # The caller was busy until 100.55: ticks 100.3 and 100.4 are skipped, 100.5 is acted on (late).
    tick, skipped = pacer.next(100.55)
    assert round(tick, 6) == 100.5 and skipped == 2


def test_closed_loop_acts_now_and_random_phase_stays_in_the_first_period() -> None:
    assert Pacer(0, start=5.0).next(7.0) == (7.0, 0)
    assert all(100.0 <= Pacer.with_random_phase(4, 100.0).tick <= 100.25 for _ in range(50))
