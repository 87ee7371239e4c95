"""Step flags from steps.csv (`;`-joined tags), which of them make a step invalid and whose fault that is,
and the plain words the report uses for them. The one home of flag names: the collect stage writes them,
the report, the summary and the gates read them. (Imports no pandas at load: the generator imports it.)

A step is invalid when it carries a flag of either set below:
- GENERATOR_FLAGS: the load generator could not do what the step asked (saturated, lagging, users not
  started, a worker lost, out of file descriptors or ports, an exception in a user). The step measured the generator,
  so it is left out of capacity and of the gates (they are judged on the steps that measured the target).
- TARGET_FLAGS: the target did not serve what the step claims to measure (it died, froze, restarted,
  delivered nothing while events were published, failed publishes, errors or a connection shortfall
  beyond the SLO, or it was to be sampled and no reading came). The step is never capacity, and a gate judged over the run fails on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

GENERATOR_SATURATED = "generator_saturated"
GENERATOR_LAGGING = "generator_lagging"
USERS_NOT_REACHED = "users_not_reached"
GENERATOR_LIMIT = "generator_limit"
GENERATOR_EXCEPTION = "generator_exception"
MEMORY_UNSETTLED = "memory_unsettled"
NO_TARGET_SAMPLES = "no_target_samples"
TARGET_UNSAMPLED = "target_unsampled"
WORKER_LOST = "worker_lost"
TARGET_DOWN = "target_down"
TARGET_UNRESPONSIVE = "target_unresponsive"
TARGET_RESTARTED = "target_restarted"
NO_DELIVERIES = "no_deliveries"
PUBLISH_FAILED = "publish_failed"
ERRORS_OVER_SLO = "errors_over_slo"
CONNECTIONS_SHORT = "connections_short"

GENERATOR_FLAGS = frozenset({GENERATOR_SATURATED, GENERATOR_LAGGING, USERS_NOT_REACHED, GENERATOR_LIMIT,
                             GENERATOR_EXCEPTION, WORKER_LOST})
TARGET_FLAGS = frozenset({TARGET_DOWN, TARGET_UNRESPONSIVE, TARGET_RESTARTED, NO_DELIVERIES, PUBLISH_FAILED,
                          ERRORS_OVER_SLO, CONNECTIONS_SHORT, TARGET_UNSAMPLED})
INVALID_FLAGS = GENERATOR_FLAGS | TARGET_FLAGS
UNMEASURED_FLAGS = TARGET_FLAGS - {ERRORS_OVER_SLO, CONNECTIONS_SHORT}
"""Target failures after which the step's figures describe nothing: a gate judged on such a step fails.
(An error rate or a connection shortfall beyond the SLO is a measurement: the gates read its figures.)"""

FLAG_WORDS = {
    GENERATOR_SATURATED: "load generator saturated (CPU >= 90% of a core)",
    GENERATOR_LAGGING: "load generator lagging (its timers fired late)",
    USERS_NOT_REACHED: "users not reached (not every user could be started)",
    GENERATOR_LIMIT: "load generator out of file descriptors or ports (its limit, not the target's)",
    GENERATOR_EXCEPTION: "an exception inside the load generator's users",
    CONNECTIONS_SHORT: "target held fewer connections than users (below 95%)",
    NO_TARGET_SAMPLES: "no samples of the target in the window",
    TARGET_UNSAMPLED: "the target was to be sampled but no reading came in the window (agent or probe silent)",
    WORKER_LOST: "a load-generating worker was lost during the step (its users were not there throughout)",
    MEMORY_UNSETTLED: "memory not settled; left out of the memory fit",
    TARGET_DOWN: "target process gone (exited or killed)",
    TARGET_UNRESPONSIVE: "target stopped answering (health probe failed or process frozen)",
    TARGET_RESTARTED: "target restarted (its sequence numbers started again)",
    NO_DELIVERIES: "events were published but none was delivered",
    PUBLISH_FAILED: "publishing events failed",
    ERRORS_OVER_SLO: "error rate above the SLO",
}


def is_valid(flags: Iterable[str]) -> bool:
    """True when none of `flags` makes a step invalid."""
    return not INVALID_FLAGS.intersection(flags)


def split_flags(cell: object) -> list[str]:
    """The tags in one `flags` cell (empty or NaN cells have none)."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
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


def has_flag(steps: Any, flag: str) -> Any:
    """Boolean mask of the steps (a DataFrame) carrying `flag` (all False when there is no flags column)."""
    import pandas as pd

    if "flags" not in steps:
        return pd.Series(False, index=steps.index)
    return steps["flags"].map(lambda cell: flag in split_flags(cell)).astype(bool)
