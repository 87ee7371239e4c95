"""Reconnect backoff with full jitter."""

import random

from rtcap.loadtests.transports.backoff import Backoff


def test_delays_stay_under_a_doubling_ceiling_capped() -> None:
    backoff = Backoff(base=0.5, cap=4.0, rng=random.Random(1))
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for ceiling in ceilings:
        assert 0.0 <= backoff.next_delay() <= ceiling


def test_jitter_spreads_a_crowd_and_reset_starts_over() -> None:
    delays = {round(Backoff(base=1.0, cap=8.0, attempt=3, rng=random.Random(seed)).next_delay(), 3) for seed in range(50)}
    assert len(delays) > 40
    backoff = Backoff(base=1.0, cap=8.0, attempt=5)
    backoff.reset()
    assert backoff.next_delay() <= 1.0
