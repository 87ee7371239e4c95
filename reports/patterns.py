"""The patterns between polling and WebSockets, side by side: what each run's transports measured beyond the
common figures (summary.json "patterns": 304s, cache hits, round trips per update, response times, fan-out).

One row per run and transport that recorded any; one column per figure any of them has. Pure: summaries in,
a formatted frame out (the HTML and markdown reports print it as a table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from rtcap.reports.units import finite, fmt_bytes, transport_name

TITLE = "Patterns between polling and WebSockets"
EXPLANATION = (
    "What each pattern costs beyond the common figures, per transport. 304s and bytes saved: answers the "
    "viewer's validators (ETag, Last-Modified) turned into 304 Not Modified, and the wire bytes the viewer's last full "
    "200 moved, less the 304's: exact for full-state polling, an upper bound for cursor polling, whose 200 "
    "would have been a short empty list (`rtcap run --scenario conditional` measures the real difference). Cache: answers a server-side cache served (HIT) against those that ran the handler, per "
    "second at the highest valid step, and their mean Age (the staleness the cache adds). Round trips per "
    "update: request/response exchanges a client waited on for each delivered update (signalling fetches after "
    "each notice). Response p50 / p99: request/response latency. Fan-out: messages each sent message became "
    "(room size minus the sender), with messages/s in and out at the highest valid step.")
COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (summary key, column title, format)
    ("not_modified", "304 answers", "int"),
    ("bytes_saved", "bytes saved by 304s", "bytes"),
    ("cache_hit_rps", "cache hits/s", "rate"),
    ("handler_rps", "handler runs/s", "rate"),
    ("cache_age_mean_s", "mean cache Age (s)", "rate"),
    ("round_trips_per_event", "round trips per update", "rate"),
    ("notifications", "notices", "int"),
    ("request_p50_ms", "response p50 (ms)", "rate"),
    ("request_p99_ms", "response p99 (ms)", "rate"),
    ("unanswered", "unanswered requests", "int"),
    ("room_size", "room size", "rate"),
    ("fanout", "fan-out", "rate"),
    ("msgs_in_per_s", "messages in/s", "rate"),
    ("msgs_out_per_s", "messages out/s", "rate"),
)


def _format(value: Any, kind: str) -> str:
    f = finite(value)
    if f is None:
        return "–"
    if kind == "bytes":
        return fmt_bytes(f)
    if kind == "int":
        return f"{f:,.0f}"
    return f"{f:,.3g}" if abs(f) < 100 else f"{f:,.0f}"


def patterns_frame(summaries: Mapping[str, Mapping[str, Any]], several: bool | None = None) -> pd.DataFrame:
    """One formatted row per (run, transport) with pattern figures; empty when no transport has any."""
    rows = []
    for run, summary in summaries.items():
        for transport, figures in (summary.get("transports") or {}).items():
            found = {k: v for k, v in (figures.get("patterns") or {}).items() if finite(v) is not None}
            # Polling with nothing but zero 304s and no cache says nothing: leave it out.
            if not any(v for v in found.values()):
                continue
            rows.append({"run": run, "transport": transport_name(transport), **found})
    if not rows:
        return pd.DataFrame()
    keys: Sequence[tuple[str, str, str]] = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    frame = pd.DataFrame([{"run": r["run"], "transport": r["transport"],
                           **{title: _format(r.get(key), kind) for key, title, kind in keys}} for r in rows])
    if not (several if several is not None else len(summaries) > 1):
        frame = frame.drop(columns="run")
    return frame
