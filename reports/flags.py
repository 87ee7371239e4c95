"""Step flags from steps.csv (`;`-joined tags) and the plain words the report uses for them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

GENERATOR_SATURATED = "generator_saturated"
GENERATOR_LAGGING = "generator_lagging"
USERS_NOT_REACHED = "users_not_reached"
MEMORY_UNSETTLED = "memory_unsettled"

FLAG_WORDS = {
    GENERATOR_SATURATED: "load generator saturated (CPU >= 90% of a core)",
    GENERATOR_LAGGING: "load generator lagging (its timers fired late)",
    USERS_NOT_REACHED: "users not reached (not every user could be started)",
    "connections_short": "target held fewer connections than users",
    "no_target_samples": "no samples of the target in the window",
    MEMORY_UNSETTLED: "memory not settled; left out of the memory fit",
}


def split_flags(cell: object) -> list[str]:
    """The tags in one `flags` cell (empty or NaN cells have none)."""
    if cell is None or (isinstance(cell, float) and pd.isna(cell)):
        return []
    return [f.strip() for f in str(cell).split(";") if f.strip()]


def _limit(slo: Mapping[str, Any] | None, key: str) -> float | None:
    """A numeric limit from meta.json's slo, or None."""
    try:
        return float((slo or {})[key])
    except (KeyError, TypeError, ValueError):
        return None


def words(flag: str, slo: Mapping[str, Any] | None = None) -> str:
    """Plain words for one flag, quoting the run's own limits (meta.json slo) when given.

    Unknown flags are shown as recorded, underscores turned into spaces.
    """
    # The limits are run options (--generator-cpu-limit...), so the run's own value beats a default.
    cpu = _limit(slo, "generator_cpu_percent")
    if flag == GENERATOR_SATURATED and cpu is not None:
        return f"load generator saturated (CPU >= {cpu:g}% of a core)"
    lag = _limit(slo, "generator_lag_p99_ms")
    if flag == GENERATOR_LAGGING and lag is not None:
        return f"load generator lagging (timer lag p99 above {lag:g} ms)"
    return FLAG_WORDS.get(flag, flag.replace("_", " "))


def reasons(cell: object, default: str = "reason not recorded",
            slo: Mapping[str, Any] | None = None) -> str:
    """Plain-language reasons for one `flags` cell, joined with '; '."""
    return "; ".join(words(f, slo) for f in split_flags(cell)) or default


def distinct(cells: Iterable[object]) -> list[str]:
    """Distinct flags across cells, in order of first appearance."""
    seen: dict[str, None] = {}
    for cell in cells:
        for flag in split_flags(cell):
            seen.setdefault(flag, None)
    return list(seen)


def has_flag(steps: pd.DataFrame, flag: str) -> pd.Series:
    """Boolean mask of the steps carrying `flag` (all False when there is no flags column)."""
    if "flags" not in steps:
        return pd.Series(False, index=steps.index)
    return steps["flags"].map(lambda cell: flag in split_flags(cell)).astype(bool)
