"""The service-level objective each transport is held to: one home for "which delivery limit applies".

A push transport delivers an event when it happens, so one delivery p99 limit (`--slo-p99-ms`) fits them
all. A polling viewer only sees an event at its next poll: its staleness is spread over the poll interval,
so its p99 sits just under the interval whatever the server does. Held to a push limit equal to its
interval, a polling step passes or fails on noise (992 ms passes, 1,003 ms fails). A transport polled on
an interval is therefore held to `interval + slack` (`--slo-poll-slack`, default POLL_SLACK_MS): what the
interval makes unavoidable plus what the server may add. meta.json keeps the limits the run applied:

    "slo": {"delivery_p99_ms": 1000, "error_rate": 0.01, "poll_slack_ms": 250,
            "delivery_p99_ms_by_transport": {"poll": 1250, "state": 1250}, ...}

Run directories written before this rule have no per-transport limits: every transport gets the push one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rtcap.targets.transports import where

POLL_SLACK_MS = 250.0
"""Default allowance above the poll interval for a polled transport's staleness p99."""
INTERVAL_BOUND = where(lambda t: t.interval)
"""Transports polled on a fixed interval, whose staleness the interval bounds from below (a long poll is
answered when the event happens: it is held to the push limit)."""
BY_TRANSPORT = "delivery_p99_ms_by_transport"


def limits(delivery_p99_ms: float, poll_interval_s: float, slack_ms: float,
           transports: Iterable[str]) -> dict[str, float]:
    """The delivery p99 limits that differ from the push one, for meta.json's slo."""
    return {t: poll_interval_s * 1000.0 + slack_ms for t in transports if t in INTERVAL_BOUND}


def delivery_limit_ms(slo: Mapping[str, Any], transport: str) -> float:
    """The delivery p99 limit `transport` is held to in a run whose meta.json slo is `slo`."""
    return float((slo.get(BY_TRANSPORT) or {}).get(transport, slo["delivery_p99_ms"]))


def for_transport(slo: Mapping[str, Any], transport: str) -> dict[str, Any]:
    """`slo` with its delivery limit replaced by the one `transport` is held to."""
    return {**slo, "delivery_p99_ms": delivery_limit_ms(slo, transport)}


def basis(slo: Mapping[str, Any], transport: str, poll_interval_s: float | None = None) -> str:
    """In words, where `transport`'s delivery limit comes from."""
    limit = delivery_limit_ms(slo, transport)
    if transport in (slo.get(BY_TRANSPORT) or {}):
        slack = slo.get("poll_slack_ms")
        interval = f"poll interval {poll_interval_s:g} s" if poll_interval_s else "poll interval"
        return f"staleness p99 <= {limit:g} ms ({interval} + {slack:g} ms slack)" if slack is not None \
            else f"staleness p99 <= {limit:g} ms"
    return f"delivery p99 <= {limit:g} ms"
