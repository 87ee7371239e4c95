"""Tests for rtcap.reports.flags: plain words for step flags."""

from __future__ import annotations

import pandas as pd

from rtcap.reports import flags


def test_reasons_in_plain_words() -> None:
    assert flags.reasons("generator_saturated") == "load generator saturated (CPU >= 90% of a core)"
    assert flags.reasons("users_not_reached;generator_lagging") == (
        "users not reached (not every user could be started); load generator lagging (its timers fired late)")
    assert flags.reasons("") == "reason not recorded" and flags.reasons(float("nan"), "x") == "x"
    assert flags.reasons("some_new_flag") == "some new flag"  # unknown flags still readable


def test_has_flag_and_distinct() -> None:
    df = pd.DataFrame({"flags": ["a;memory_unsettled", "", "memory_unsettled_not", "b;a"]})
    assert flags.has_flag(df, flags.MEMORY_UNSETTLED).tolist() == [True, False, False, False]
    assert flags.distinct(df["flags"]) == ["a", "memory_unsettled", "memory_unsettled_not", "b"]
    assert not flags.has_flag(pd.DataFrame({"x": [1]}), "a").any()
