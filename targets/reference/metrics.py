"""Prometheus metrics of one reference-target app, kept in a private registry."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
    generate_latest,
)

from rtcap.targets.transports import where

HTTP_STREAMS = where(lambda t: t.kind == "held stream" and not t.websocket)
"""Held streams on one HTTP response each (sse, ndjson): the reference serves every such transport rtcap
measures as a stream of its own, so a new one is counted, ballasted and faulted like SSE without a list to edit.
The other labels name the reference's own WebSocket handlers (signal and presence are served by ws and chat)."""
TRANSPORTS = ("poll", "longpoll", *HTTP_STREAMS, "ws", "chat", "rpc")
STREAM_TRANSPORTS = (*HTTP_STREAMS, "ws", "chat")
SOCKET_TRANSPORTS = (*STREAM_TRANSPORTS, "rpc")  # held connections that can be rejected or dropped
# Calibration faults (calibration.py) and the transports they apply to.
FAULT_KINDS = ("drop", "duplicate", "swap")
FAULT_TRANSPORTS = ("poll", "longpoll", *HTTP_STREAMS, "ws")


class Metrics:
    """The rtcap_* metrics plus process metrics, registered in a registry owned by this object."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        # A private registry lets several apps live in one process (tests) without
        # "Duplicated timeseries" errors from the global default registry.
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.open_connections = Gauge(
            "rtcap_open_connections",
            "Open streams (sse, ndjson, ws, chat) and in-flight poll requests (poll, longpoll).",
            ["transport"],
            registry=self.registry,
        )
        self.events_published = Counter(
            "rtcap_events_published", "Events published, per channel.", ["channel"], registry=self.registry
        )
        self.events_delivered = Counter(
            "rtcap_events_delivered", "Events written to clients, per transport.", ["transport"], registry=self.registry
        )
        self.slow_consumers_dropped = Counter(
            "rtcap_slow_consumers_dropped",
            "Subscribers disconnected because their send queue filled up.",
            ["transport"],
            registry=self.registry,
        )
        self.connections_rejected = Counter(
            "rtcap_connections_rejected",
            "Streams refused because max_connections was reached.",
            ["transport"],
            registry=self.registry,
        )
        self.limit_refusals = Counter(
            "rtcap_limit_refused",
            "New channels or rooms refused because --max-channels or --max-rooms was reached.",
            ["kind"],
            registry=self.registry,
        )
        self.channels_held = Gauge(
            "rtcap_channels_held",
            "Feed channels (kind=channel, never freed) and chat rooms (kind=room, freed when empty) held.",
            ["kind"],
            registry=self.registry,
        )
        self.injected_faults = Counter(
            "rtcap_injected",
            "Faults injected by the calibration knobs (--drop-every, --duplicate-every, --swap-every).",
            ["kind", "transport"],
            registry=self.registry,
        )
        # Touch every label so all series are exported (at 0) from the first scrape, and keep
        # the children: labels() does a dict lookup under a lock, too slow for per-event use.
        self.open = {t: self.open_connections.labels(t) for t in TRANSPORTS}
        self.delivered = {t: self.events_delivered.labels(t) for t in TRANSPORTS}
        self.dropped = {t: self.slow_consumers_dropped.labels(t) for t in SOCKET_TRANSPORTS}
        self.rejected = {t: self.connections_rejected.labels(t) for t in SOCKET_TRANSPORTS}
        self.refused = {k: self.limit_refusals.labels(k) for k in ("channel", "room")}
        self.injected = {(k, t): self.injected_faults.labels(k, t) for k in FAULT_KINDS for t in FAULT_TRANSPORTS}
        self._published: dict[str, Counter] = {}
        self.worker_info = Gauge(
            "rtcap_worker_info", "The worker that answered this scrape (each worker reports its own figures).",
            ["worker", "pid", "broker"], registry=self.registry,
        )

    def describe_worker(self, index: int, pid: int, broker: str) -> None:
        """Name the worker behind this registry: with several workers every scrape answers for one of them."""
        self.worker_info.labels(str(index), str(pid), broker).set(1)

    def watch_channels(self, channels: Callable[[], int], rooms: Callable[[], int]) -> None:
        """Report how many channels and rooms exist, read at scrape time (nothing to update per request)."""
        self.channels_held.labels("channel").set_function(channels)
        self.channels_held.labels("room").set_function(rooms)

    def published(self, channel: str) -> Counter:
        """The published-events counter child of `channel` (cached)."""
        child = self._published.get(channel)
        if child is None:
            child = self._published[channel] = self.events_published.labels(channel)
        return child

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)
