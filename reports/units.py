"""Numbers for people and the small value helpers every report module shares: pure, standard library only.

Plain values in, text out: no pandas and no plotly here, so the planner, the thresholds and the tables can
format a figure without importing figure code. Unknown values (None, NaN, text) read as an en dash "–" unless
a formatter says otherwise. Transport names, order and kind come from the records in rtcap.targets.transports.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rtcap.targets.transports import REGISTRY, get

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB
DASH = "–"
"""What an unknown value reads as in a table or a sentence."""


# Values ---------------------------------------------------------------------------------------------------------

def finite(value: Any) -> float | None:
    """A finite float or None, so NaN never reaches a table or JSON."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def nan_to_none(value: Any) -> Any:
    """The same plain data (dicts, lists, tuples as lists) with non-finite floats as None: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_none(v) for v in value]
    return value


def inf_to_none(x: float) -> float | None:
    """Infinity (no upper limit, a resource that never binds) as None, as JSON.stringify writes it: null."""
    return None if math.isinf(x) else x


# Transports -----------------------------------------------------------------------------------------------------

def transport_name(transport: str) -> str:
    """Readable name of a transport ("ws" -> "WebSocket"); a name rtcap does not know (a run directory another
    tool wrote) stays as it is."""
    record = get(transport)
    return transport if record is None else record.display


def ordered_transports(transports: Sequence[str]) -> list[str]:
    """Polling first, from most to least wasteful, then push (targets/transports.py `shown`); unknown ones last."""
    present = list(dict.fromkeys(transports))
    known = [t.name for t in sorted(REGISTRY, key=lambda t: t.shown) if t.name in present]
    return known + [t for t in present if t not in known]


def throughput_kind(transport: str, rows: pd.DataFrame | None = None) -> str:
    """'poll' if the transport is measured in requests/s, else 'push' (messages/s).

    A transport rtcap does not know (a run directory another tool wrote) is judged by its rows."""
    if (record := get(transport)) is not None:
        return "poll" if record.polled or record.request_response else "push"
    if rows is None:
        return "push"
    return "push" if rows["msgs_per_s"].notna().any() else "poll"


# Numbers --------------------------------------------------------------------------------------------------------

def fmt_num(value: Any, digits: int = 0, scale: float = 1.0) -> str:
    """Format a number with thousands separators; unknown values become an en dash."""
    try:
        f = float(value) / scale
    except (TypeError, ValueError):
        return DASH
    return f"{f:,.{digits}f}" if math.isfinite(f) else DASH


def fmt_int_or_no_limit(x: float | None) -> str:
    """The planner's whole numbers: thousands separators, and None or infinity (unbounded) reads 'no limit'
    where fmt_num would print an en dash."""
    return "no limit" if x is None or math.isinf(x) else f"{x:,.0f}"


def _sig3(x: float) -> str:
    """Three significant digits, trailing zeros kept: 25.0, 308, 1.25."""
    a = abs(x)
    return f"{x:,.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 1 else f"{x:.2g}"


def fmt_ratio(value: Any) -> str:
    """A count such as updates per poll interval: 3 significant digits, infinity as '∞'."""
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    f = finite(value)
    if f is None:
        return DASH
    return _sig3(f)


def fmt_pct(fraction: Any) -> str:
    """A fraction as a percentage: 0.01 -> '1%'."""
    f = finite(fraction)
    return DASH if f is None else f"{f * 100:g}%"


# Bytes ----------------------------------------------------------------------------------------------------------

def _binary(f: float, units: tuple[tuple[str, int], ...]) -> str:
    """Bytes in the largest of `units` (largest first) they reach, one decimal; below them in whole B."""
    for unit, size in units:
        if abs(f) >= size:
            return f"{f / size:,.1f} {unit}"
    return f"{f:,.0f} B"


_TO_GIB = (("GiB", GIB), ("MiB", MIB), ("KiB", KIB))


def fmt_bytes(value: Any) -> str:
    """Bytes in human units (B, KiB, MiB, GiB): per connection, client, event or second; unknown is an en dash."""
    f = finite(value)
    return DASH if f is None else _binary(f, _TO_GIB)


def fmt_bytes_to_tib(x: float) -> str:
    """The planner's instance and fleet memory: as fmt_bytes with TiB above GiB (a known number, never None)."""
    return _binary(x, (("TiB", TIB), *_TO_GIB))


def fmt_bytes_decimal(total: float) -> str:
    """Traffic in decimal GB or TB, as it is billed (bandwidth over 30 days)."""
    return f"{total / 1e12:,.1f} TB" if total >= 1e12 else f"{total / 1e9:,.1f} GB"


def fmt_kib(value: Any) -> str:
    """Bytes as KiB with one decimal, no unit (the caller says KiB once)."""
    return fmt_num(value, 1, KIB)


def fmt_bitrate(bytes_per_s: float) -> str:
    """Bytes per second as bits per second in Mbit/s or Gbit/s (how links are sold)."""
    mbit = bytes_per_s * 8 / 1e6
    return f"{mbit / 1000:,.2f} Gbit/s" if mbit >= 1000 else f"{mbit:,.1f} Mbit/s"


# Time and CPU ---------------------------------------------------------------------------------------------------

def fmt_ms(value: Any) -> str:
    """A duration given in ms, as ms below one second and as s above."""
    f = finite(value)
    if f is None:
        return DASH
    if abs(f) >= 1000:
        return f"{f / 1000:,.2f} s"
    return f"{f:.1f} ms" if abs(f) < 10 else f"{f:,.0f} ms"


def fmt_seconds(value: Any) -> str:
    """An interval given in seconds: '1 s', '2.5 s', '500 ms'."""
    f = finite(value)
    if f is None:
        return DASH
    return f"{f * 1000:,.0f} ms" if f < 1 else f"{f:,.3g} s"


def fmt_update_rate(per_s: Any) -> str:
    """An update rate: '1/s', '0.2/s', '6/min' below 0.1/s."""
    f = finite(per_s)
    if f is None:
        return DASH
    if 0 < f < 0.1:
        return f"{f * 60:.3g}/min"
    return f"{f:,.3g}/s"


def fmt_cpu(core_seconds: Any) -> str:
    """CPU time of one unit of work: '50.6 µs', '308 µs', '1.25 ms'; unknown is an en dash."""
    f = finite(core_seconds)
    if f is None:
        return DASH
    us = f * 1e6
    return f"{_sig3(us / 1000)} ms" if abs(us) >= 1000 else f"{_sig3(us)} µs"


def fmt_cores(x: float) -> str:
    """A number of cores: two decimals below 10, one above."""
    return f"{x:,.2f}" if abs(x) < 10 else f"{x:,.1f}"
