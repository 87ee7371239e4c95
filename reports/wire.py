"""Bytes on the wire per client per 5 minutes: the Ably-shaped transport comparison, from steps.csv.

Ably compared polled live scores with a WebSocket by overhead, latency and data per client over
five minutes; this module puts the same columns on measured steps, one row per transport.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from rtcap.reports.units import finite, fmt_bytes, fmt_ms, ordered_transports, transport_name

WINDOW_S = 300.0
TITLE = "Bytes on the wire per client, per 5 minutes"
COLUMNS = ("Total overhead (5 min)", "Average latency", "Data from server (5 min)",
           "Wire total (5 min)", "Overhead ratio", "Bytes per delivered event", "valid steps")
EXPLANATION = (
    "Each figure is the median over the transport's valid steps in that run's steps.csv (the last "
    "column counts them), per client (one Locust user) over 300 s: total overhead is wire bytes "
    "minus data from server, average latency the mean delivery latency (for polling, the staleness "
    "a viewer sees), data from server the application payload received (bodies, SSE data, "
    "WebSocket messages), wire total every byte sent and received with headers and framing, "
    "overhead ratio this row's overhead over the lowest in the table, and bytes per delivered "
    "event the wire bytes divided by the events delivered.")
FIELDS = ("bytes_per_client_5min", "overhead_per_client_5min", "payload_per_client_5min",
          "latency_mean_ms", "bytes_per_event", "valid_steps", "steps")


def _median(values: pd.Series) -> float | None:
    """Median of the known values, None when there are none."""
    known = pd.to_numeric(values, errors="coerce").dropna()
    return finite(known.median()) if len(known) else None


def _col(steps: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column, or unknowns when a frame built elsewhere lacks it."""
    if name not in steps:
        return pd.Series(float("nan"), index=steps.index)
    return pd.to_numeric(steps[name], errors="coerce").astype(float)


def _valid(steps: pd.DataFrame) -> pd.Series:
    """The valid mask, also for a raw pd.read_csv frame (text or NaN cells; empty means valid)."""
    if steps["valid"].dtype == bool:
        return steps["valid"]
    false = {"false", "0", "no", "n", "f", "0.0"}
    return steps["valid"].map(lambda v: pd.isna(v) or str(v).strip().lower() not in false).astype(bool)


def per_client(steps: pd.DataFrame) -> pd.DataFrame:
    """Per step: wire, payload and overhead bytes per client per 5 min, and wire bytes per event.

    The recorded columns are used when present; empty cells (older runs) are derived from the
    wire counts with the same formula the collect stage uses, so payload stays unknown there.
    """
    users, duration, delivered = _col(steps, "users"), _col(steps, "duration_s"), _col(steps, "delivered")
    scale = (WINDOW_S / (users * duration)).where((users > 0) & (duration > 0))
    wire_bytes = _col(steps, "bytes_received") + _col(steps, "bytes_sent")
    wire = _col(steps, "bytes_per_client_5min").fillna(wire_bytes * scale)
    payload = _col(steps, "payload_per_client_5min").fillna(_col(steps, "payload_bytes") * scale)
    # As in the collect stage, zero payload means a client that does not count it: unknown, so
    # the overhead is not the whole wire total.
    payload = payload.where(payload > 0)
    overhead = _col(steps, "overhead_per_client_5min").fillna(wire - payload)
    per_event = _col(steps, "bytes_per_event").fillna((wire_bytes / delivered).where(delivered > 0))
    return pd.DataFrame({"wire": wire, "payload": payload, "overhead": overhead,
                         "per_event": per_event}, index=steps.index)


def transport_wire(steps: pd.DataFrame) -> dict[str, Any]:
    """Medians over one transport's valid steps: per-client bytes (5 min), mean latency, bytes/event."""
    valid = steps[_valid(steps)]
    pc = per_client(valid)
    return {
        "bytes_per_client_5min": _median(pc["wire"]),
        "overhead_per_client_5min": _median(pc["overhead"]),
        "payload_per_client_5min": _median(pc["payload"]),
        "latency_mean_ms": _median(_col(valid, "latency_mean_ms")),
        "bytes_per_event": _median(pc["per_event"]),
        "valid_steps": int(len(valid)),
        "steps": int(len(steps)),
    }


def wire_numbers(steps: pd.DataFrame) -> pd.DataFrame:
    """One numeric row per (transport, run) with transport_wire's fields and the overhead ratio."""
    frame = steps if "run" in steps else steps.assign(run="")
    rows = []
    for transport in ordered_transports(frame["transport"].tolist()):
        for run in dict.fromkeys(frame["run"]):
            part = frame[(frame["transport"] == transport) & (frame["run"] == run)]
            if len(part):
                rows.append({"run": run, "transport": transport, **transport_wire(part)})
    out = pd.DataFrame(rows, columns=["run", "transport", *FIELDS])
    overhead = pd.to_numeric(out["overhead_per_client_5min"], errors="coerce")
    lowest = overhead.min()
    out["overhead_ratio"] = overhead / lowest if pd.notna(lowest) and lowest > 0 else float("nan")
    out["is_baseline"] = overhead.eq(lowest) & overhead.notna()
    return out


def _ratio(row: pd.Series) -> str:
    """'baseline' for the lowest overhead, else how many times it."""
    if row["is_baseline"]:
        return "baseline"
    r = finite(row["overhead_ratio"])
    if r is None:
        return "–"
    return f"{r:,.0f}x" if r >= 10 else f"{r:.1f}x"


def wire_table(steps: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The comparison formatted for people (human units), and notes on what it could not show."""
    nums = wire_numbers(steps)
    several = nums["run"].nunique() > 1
    rows = []
    for _, r in nums.iterrows():
        cells = [fmt_bytes(r["overhead_per_client_5min"]), fmt_ms(r["latency_mean_ms"]),
                 fmt_bytes(r["payload_per_client_5min"]), fmt_bytes(r["bytes_per_client_5min"]),
                 _ratio(r), fmt_bytes(r["bytes_per_event"]), f"{r['valid_steps']} of {r['steps']}"]
        rows.append({**({"run": r["run"]} if several else {}),
                     "transport": transport_name(r["transport"]), **dict(zip(COLUMNS, cells))})
    frame = pd.DataFrame(rows, columns=[*(["run"] if several else []), "transport", *COLUMNS])
    notes = []
    missing = nums[nums["overhead_per_client_5min"].isna() & nums["bytes_per_client_5min"].notna()]
    if len(missing):
        names = ", ".join(transport_name(t) + (f" ({run})" if several else "")
                          for t, run in zip(missing["transport"], missing["run"]))
        notes.append(f"Overhead unavailable for {names}: steps.csv has no payload bytes (a run "
                     "recorded before payload was measured), so only the wire totals, from "
                     "bytes_received + bytes_sent, are shown.")
    if (nums["valid_steps"] == 0).any():
        names = ", ".join(transport_name(t) for t in nums.loc[nums["valid_steps"] == 0, "transport"])
        notes.append(f"No valid steps for {names}: nothing to compare.")
    return frame, notes
