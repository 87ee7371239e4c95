"""Join step windows, the client timeline and the target's samples into one row per (transport, step).

This is the "collect" half of a run (the report stage only reads what it writes): pure functions over
plain rows, no Locust and no I/O beyond reading the files a Locust run recorded.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from rtcap.loadtests.generator.timeline import decode_histogram, encode_histogram, new_histogram, read_timeline
from rtcap.reports import flags as F
from rtcap.reports import schema
from rtcap.targets.transports import where

GENERATOR_SATURATED_PERCENT = 90.0
GENERATOR_LAG_LIMIT_MS = 100.0
"""A step whose generator woke its timers this late (p99) is not counted: its clients read late."""
REQUEST_TRANSPORTS = where(lambda t: t.request_response)
"""Nothing is pushed, so their latency columns hold the response times."""
HELD_TRANSPORTS = where(lambda t: t.holds_connection)
"""Every user holds a connection open: the target must show as many (connections_short)."""
FEED_TRANSPORTS = where(lambda t: t.feed)
"""A step that published and delivered none of the channel's events measured nothing (no_deliveries)."""
EXCEPTION_PREFIX = "exception:"
"""Timeline counters of exceptions raised inside users, by class name (loadtests/generator/recorder.py)."""


@dataclass(frozen=True)
class Evidence:
    """What the orchestrating process saw beside the clients while one transport ran: when the target's
    process was found gone, its health probes (loadtests/run/liveness.py), every publish (loadtests/run/publisher.py),
    the rate at which the target publishes by itself, and the SLO's error-rate limit."""

    gone_at: float | None = None
    health: list[dict[str, Any]] = field(default_factory=list)
    publishes: list[dict[str, Any]] = field(default_factory=list)
    self_publish_rate: float | None = None
    error_rate_limit: float | None = None
    sampled: bool = False
    """The target's process was to be sampled (a probe existed): a step without a reading did not measure it."""


GENERATOR = "generator"
"""The timeline's pseudo-transport holding the load generator's own schedule lag."""
FIVE_MINUTES_S = 300.0


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines record (step windows, health probes, publishes); [] when it was never written."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line after a crash: the finished lines before it still count
    return rows


def _percentile_ms(histogram: HdrHistogram, percentile: float) -> float | None:
    if histogram.get_total_count() == 0:
        return None
    return histogram.get_value_at_percentile(percentile) / 1000.0


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else None


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.fmean(values) if values else None


def _merged(rows: list[dict[str, Any]], name: str) -> HdrHistogram:
    histogram = new_histogram()
    for row in rows:
        if row.get(name):
            histogram.add(decode_histogram(row[name]))
    return histogram


def _per_client_5min(total: int, clients: int, duration: float) -> float | None:
    return total / clients / duration * FIVE_MINUTES_S if clients and duration else None


def step_row(transport: str, window: dict[str, Any], seconds: list[dict[str, Any]], samples: list[dict[str, Any]],
             saturated_percent: float = GENERATOR_SATURATED_PERCENT,
             lag_limit_ms: float = GENERATOR_LAG_LIMIT_MS, evidence: Evidence | None = None) -> dict[str, Any]:
    """One steps.csv row from a window, the timeline seconds inside it and the samples taken during it."""
    evidence = evidence or Evidence()
    t_start, t_end = float(window["t_start"]), float(window["t_end"])

    def within(second: dict[str, Any]) -> bool:
        return second["t"] >= t_start - 1e-9 and second["t"] + 1 <= t_end + 1e-9

    inside = [s for s in seconds if s["transport"] == transport and within(s)]
    # Whole seconds inside the window, counted from the clock: a second in which nothing happened (a 10 s
    # poll interval leaves most seconds empty) has no timeline row but still counts.
    duration = float(max(0, math.floor(t_end + 1e-9) - math.ceil(t_start - 1e-9))) or max(t_end - t_start, 1e-9)
    delivery, connect = _merged(inside, "delivery_hist"), _merged(inside, "connect_hist")
    request = _merged(inside, "request_hist")
    if transport in REQUEST_TRANSPORTS:
        delivery = request  # the answer is what a request/response client waits for: its latency is the SLO's
    lag = _merged([s for s in seconds if s["transport"] == GENERATOR and within(s)], "lag_hist")

    def total(name: str) -> int:
        return int(sum(second.get(name, 0) for second in inside))

    delivered, requests, connects, errors = total("delivered"), total("requests"), total("connects"), total("errors")
    received, sent, payload = total("bytes_received"), total("bytes_sent"), total("payload_bytes")
    clients = int(window.get("running_users") or window["users"])
    in_window = [s for s in samples if t_start <= s["t"] <= t_end]
    target = [s for s in in_window if s["role"] == "target"]
    generator = [s for s in in_window if s["role"] == "generator"]
    target_tcp = _median([s.get("tcp_established") for s in target])
    client_open = _median([s.get("open_connections", 0) for s in inside])
    connections = target_tcp if target_tcp is not None else client_open
    # Saturation is per process: with several generator processes, the busiest one decides.
    per_process = [_mean([s["cpu_percent"] for s in generator if s["pid"] == pid]) for pid in {s["pid"] for s in generator}]
    generator_cpu = max((cpu for cpu in per_process if cpu is not None), default=None)

    lag_p99 = _percentile_ms(lag, 99)
    busy = busy_workers([s for s in seconds if s["transport"] == GENERATOR and within(s)], saturated_percent,
                        lag_limit_ms)
    lost = lost_workers(seconds, t_start, t_end, window.get("first_after"))
    raised = sorted({name for second in inside for name in second if name.startswith(EXCEPTION_PREFIX)})
    exceptions = {name[len(EXCEPTION_PREFIX):]: total(name) for name in raised}
    liveness = _liveness(evidence, target, t_start, t_end)
    flags = []
    if (generator_cpu is not None and generator_cpu >= saturated_percent) or any(b["saturated"] for b in busy):
        flags.append("generator_saturated")
    lag_judged = _lag_judged(lag)
    if (lag_judged is not None and lag_judged > lag_limit_ms) or any(b["lagging"] for b in busy):
        flags.append("generator_lagging")
    if lost:
        flags.append(F.WORKER_LOST)  # a lost worker's users were not there for the whole step
    if window.get("settled") is False:
        flags.append("memory_unsettled")
    if not window.get("reached", True) and F.USERS_NOT_REACHED not in flags:
        flags.append(F.USERS_NOT_REACHED)
    if transport in HELD_TRANSPORTS and connections is not None and connections < 0.95 * window["users"]:
        flags.append(F.CONNECTIONS_SHORT)
    if not target:
        # Sampled and silent (an agent down, a probe failing) did not measure the target; never sampled is known.
        flags.append(F.TARGET_UNSAMPLED if evidence.sampled else F.NO_TARGET_SAMPLES)
    operations = requests + connects + delivered
    error_rate = errors / operations if operations else 0.0
    flags += liveness.pop("flags")
    if liveness.pop("events_expected") and transport in FEED_TRANSPORTS and delivered == 0:
        flags.append(F.NO_DELIVERIES)
    if evidence.error_rate_limit is not None and error_rate > evidence.error_rate_limit:
        flags.append(F.ERRORS_OVER_SLO)
    if total("seq_resets"):
        flags.append(F.TARGET_RESTARTED)
    if total("generator_errors"):
        flags.append(F.GENERATOR_LIMIT)
    if exceptions:
        flags.append(F.GENERATOR_EXCEPTION)
    return {
        "transport": transport,
        "step": int(window["step"]),
        "users": int(window["users"]),
        "connections": connections,
        "t_start": t_start,
        "t_end": t_end,
        "duration_s": duration,
        "requests": requests + connects,
        "rps": (requests + connects) / duration,
        "delivered": delivered,
        "msgs_per_s": delivered / duration,
        "latency_p50_ms": _percentile_ms(delivery, 50),
        "latency_p95_ms": _percentile_ms(delivery, 95),
        "latency_p99_ms": _percentile_ms(delivery, 99),
        "latency_max_ms": delivery.get_max_value() / 1000.0 if delivery.get_total_count() else None,
        "latency_mean_ms": delivery.get_mean_value() / 1000.0 if delivery.get_total_count() else None,
        "connect_p50_ms": _percentile_ms(connect, 50),
        "connect_p99_ms": _percentile_ms(connect, 99),
        "errors": errors,
        "error_rate": error_rate,
        "lost": total("lost"),
        "duplicated": total("duplicated"),
        "reordered": total("reordered"),
        "bytes_received": received,
        "bytes_sent": sent,
        "bytes_per_event": (received + sent) / delivered if delivered else None,
        "payload_bytes": payload,
        "bytes_per_client_5min": _per_client_5min(received + sent, clients, duration),
        "payload_per_client_5min": _per_client_5min(payload, clients, duration),
        "overhead_per_client_5min": _per_client_5min(received + sent - payload, clients, duration) if payload else None,
        "missed_ticks": total("missed_ticks"),
        **_pattern_figures(total, duration),
        **_ws_pattern_figures(total, duration, delivered),
        "request_p50_ms": _percentile_ms(request, 50),
        "request_p99_ms": _percentile_ms(request, 99),
        "rss_bytes": _median([s["rss_bytes"] for s in target]),
        "uss_bytes": _median([s.get("uss_bytes") for s in target]),
        "cpu_percent": _mean([s["cpu_percent"] for s in target]),
        "sockstat_tcp_mem_bytes": _median([s.get("sockstat_tcp_mem_bytes") for s in target]),
        "generator_cpu_percent": generator_cpu,
        "generator_lag_p99_ms": lag_p99,
        "generator_lag_max_ms": lag.get_max_value() / 1000.0 if lag.get_total_count() else None,
        "settle_s": window.get("settle_s"),
        "settled": window.get("settled"),
        **liveness,
        "seq_resets": total("seq_resets"),
        "generator_errors": total("generator_errors"),
        "exceptions": sum(exceptions.values()),
        "exception_names": ";".join(f"{name} x{count}" for name, count in exceptions.items()) or None,
        "tcp_outgoing": _median([s.get("tcp_outgoing") for s in target]),
        "flags": ";".join(flags),
        "valid": F.is_valid(flags),
    }


def _lag_judged(lag: HdrHistogram) -> float | None:
    """The lag a window is judged on: p99, but p90 below 100 wake-ups, where p99 is just their maximum and one
    hiccup (a GC pause, a process spawned by the target) would void a short window."""
    return _percentile_ms(lag, 99) if lag.get_total_count() >= 100 else _percentile_ms(lag, 90)


def busy_workers(rows: list[dict[str, Any]], saturated_percent: float = GENERATOR_SATURATED_PERCENT,
                 lag_limit_ms: float = GENERATOR_LAG_LIMIT_MS) -> list[dict[str, Any]]:
    """The Locust workers that were saturated (heartbeat CPU) or lagging (timer lag) in a window, from the
    "workers" of its generator rows: [{"worker", "cpu_percent", "lag_ms", "saturated", "lagging"}]."""
    cpu: dict[str, list[float]] = {}
    lags: dict[str, HdrHistogram] = {}
    for row in rows:
        for worker, part in (row.get("workers") or {}).items():
            if part.get("cpu_percent") is not None:
                cpu.setdefault(worker, []).append(float(part["cpu_percent"]))
            if part.get("lag_hist"):
                lags.setdefault(worker, new_histogram()).add(decode_histogram(part["lag_hist"]))
    busy = []
    for worker in sorted(set(cpu) | set(lags)):
        mean = _mean(cpu.get(worker, []))
        lag = _lag_judged(lags[worker]) if worker in lags else None
        saturated = mean is not None and mean >= saturated_percent
        lagging = lag is not None and lag > lag_limit_ms
        if saturated or lagging:
            busy.append({"worker": worker, "cpu_percent": mean, "lag_ms": lag, "saturated": saturated,
                         "lagging": lagging})
    return busy


def worker_losses(seconds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every Locust worker lost during the test: [{"worker", "users", "last_seen", "lost_at"}] by time."""
    losses = [{"worker": worker, **part} for row in seconds if row["transport"] == GENERATOR
              for worker, part in (row.get("workers") or {}).items() if part.get("lost_at") is not None]
    return sorted(losses, key=lambda loss: loss["last_seen"])


def lost_workers(seconds: list[dict[str, Any]], t_start: float, t_end: float,
                 first_after: float | None = None) -> list[dict[str, Any]]:
    """The worker losses that void the window [t_start, t_end]: those between when the worker was last heard of
    and when it was found lost overlap the window or (`first_after`: the end of the window before) its ramp,
    whose users Locust may still have handed the dead worker."""
    since = t_start if first_after is None else first_after
    return [loss for loss in worker_losses(seconds) if loss["last_seen"] <= t_end and loss["lost_at"] >= since]


def _liveness(evidence: Evidence, target: list[dict[str, Any]], t_start: float, t_end: float) -> dict[str, Any]:
    """The target's liveness and the publisher's record inside one window: columns, flags, and whether
    events were published (so that deliveries were due)."""
    flags = []
    if evidence.gone_at is not None and evidence.gone_at <= t_end:
        flags.append(F.TARGET_DOWN)
    probes = [h for h in evidence.health if t_start <= h["t"] <= t_end]
    failed = [h for h in probes if not h.get("ok")]
    if failed or any(s.get("state") == "stopped" for s in target):
        flags.append(F.TARGET_UNRESPONSIVE)
    published = [p for p in evidence.publishes if t_start <= p["t"] <= t_end]
    publish_errors = [p for p in published if not p.get("ok")]
    if publish_errors:
        flags.append(F.PUBLISH_FAILED)
    publish_ms = sorted(float(p["ms"]) for p in published if p.get("ms") is not None)
    # Deliveries are counted over the window's whole seconds: events were due there if one was published
    # at least half a second before they end, or a self-publishing target ticked at least twice in them.
    first, last = math.ceil(t_start - 1e-9), math.floor(t_end + 1e-9)
    if evidence.publishes or not evidence.self_publish_rate:
        expected = any(p.get("ok") and first <= p["t"] < last - 0.5 for p in published)
    else:
        expected = evidence.self_publish_rate * max(0, last - first) >= 2.0
    return {
        "published": len(published) if evidence.publishes else None,
        "publish_errors": len(publish_errors) if evidence.publishes else None,
        "publish_p99_ms": publish_ms[min(len(publish_ms) - 1, math.ceil(0.99 * len(publish_ms)) - 1)]
        if publish_ms else None,
        "publish_error": publish_errors[0].get("error") if publish_errors else None,
        "health_failures": len(failed) if evidence.health else None,
        "flags": flags,
        "events_expected": expected,
    }


def _pattern_figures(total: Callable[[str], int], duration: float) -> dict[str, Any]:
    """Conditional polling and cache figures of one window, from its summed counters (`total(name)`).

    Cache figures are None when no answer carried the adapter's `cache_header`: unknown, not zero.
    """
    hits, misses = total("cache_hits"), total("cache_misses")
    cached = hits + misses
    return {
        "not_modified": total("not_modified"),
        "bytes_saved": total("bytes_saved"),
        "cache_hits": hits if cached else None,
        "cache_misses": misses if cached else None,
        "cache_hit_rps": hits / duration if cached else None,
        "handler_rps": misses / duration if cached else None,
        "cache_age_mean_s": total("cache_age_s") / cached if cached else None,
    }


def _ws_pattern_figures(total: Callable[[str], int], duration: float, delivered: int) -> dict[str, Any]:
    """Signalling, request/response and presence figures of one window, from its summed counters.

    Message counts are None for transports whose clients do not count messages (unknown, not zero); room
    size and fan-out only exist where senders say which room size they send to (presence).
    """
    round_trips, sent, received = total("round_trips"), total("messages_sent"), total("messages_received")
    members = total("sent_room_members")
    return {
        "round_trips": round_trips,
        "round_trips_per_event": round_trips / delivered if delivered else None,
        "notifications": total("notifications"),
        "unanswered": total("unanswered"),
        "in_flight": total("in_flight"),
        "messages_sent": sent if sent or received else None,
        "messages_received": received if sent or received else None,
        "msgs_in_per_s": sent / duration if sent or received else None,
        "msgs_out_per_s": received / duration if sent or received else None,
        "room_size": members / sent if members and sent else None,
        "fanout": delivered / sent if members and sent else None,
    }


def merge_seconds(seconds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (second, transport) from the rows of several recording processes (Locust workers):
    counts and open connections add up, latency histograms merge exactly."""
    merged: dict[tuple[int, str], dict[str, Any]] = {}
    for second in seconds:
        key = (second["t"], second["transport"])
        into = merged.get(key)
        if into is None:
            merged[key] = dict(second)
            continue
        for name, value in second.items():
            if name.endswith("_hist"):
                if value and into.get(name):
                    histogram = decode_histogram(into[name])
                    histogram.add(decode_histogram(value))
                    into[name] = encode_histogram(histogram)
                elif value:
                    into[name] = value
            elif isinstance(value, int) and name != "t":
                into[name] = into.get(name, 0) + value
            elif isinstance(value, dict):  # per worker ("workers"): each worker's fields, joined
                old = into.get(name) or {}
                into[name] = {**old, **{key: {**(old.get(key) or {}), **part} for key, part in value.items()}}
    return [merged[key] for key in sorted(merged)]


def collect_transport(transport: str, record_dir: Path, samples: list[dict[str, Any]],
                      saturated_percent: float = GENERATOR_SATURATED_PERCENT,
                      lag_limit_ms: float = GENERATOR_LAG_LIMIT_MS, evidence: Evidence | None = None,
                      planned: list[int] | None = None) -> list[dict[str, Any]]:
    """All step rows of one transport from its Locust record directory (one timeline file per recording
    process), its samples, and the health probes and publishes recorded there.

    When the target's process was found gone (`evidence.gone_at`) before every `planned` step finished, the
    step it died in gets a row too, from the end of the last finished window to the death: it did not
    measure the target, and saying so keeps a report from reading "the SLO held at every step".
    """
    windows = _chained(read_jsonl(record_dir / schema.WINDOWS_FILE))
    if evidence is not None and evidence.gone_at is not None and planned and len(windows) < len(planned):
        t_start = float(windows[-1]["t_end"]) if windows else evidence.gone_at - 1.0
        windows.append({"step": len(windows), "users": planned[len(windows)], "t_start": t_start,
                        "t_end": max(evidence.gone_at, t_start + 1.0), "unfinished": True})
    seconds = read_seconds(record_dir)
    evidence = evidence or Evidence()
    if not evidence.health and not evidence.publishes:
        evidence = replace(evidence, health=read_jsonl(record_dir / schema.HEALTH_FILE),
                           publishes=read_jsonl(record_dir / schema.PUBLISHES_FILE))
    return [step_row(transport, window, seconds, samples, saturated_percent, lag_limit_ms, evidence)
            for window in windows]


def read_seconds(record_dir: Path) -> list[dict[str, Any]]:
    """The timeline of one transport's record directory, one row per (second, transport)."""
    return merge_seconds([row for path in sorted(record_dir.glob(schema.TIMELINE_GLOB)) for row in read_timeline(path)])


def _chained(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Windows with the end of the window before each ("first_after"): a worker lost between two windows
    voids the next one (lost_workers)."""
    return [{**window, "first_after": float(windows[i - 1]["t_end"]) if i else 0.0} for i, window in enumerate(windows)]


def worker_notes(transport: str, record_dir: Path, rows: list[dict[str, Any]],
                 saturated_percent: float = GENERATOR_SATURATED_PERCENT,
                 lag_limit_ms: float = GENERATOR_LAG_LIMIT_MS) -> list[str]:
    """One note per Locust worker that voided steps of `transport` (saturated, lagging, or lost), naming it,
    the steps, and for a loss the users it held; a loss after the last finished step names the step in
    progress. [] for a run without workers."""
    seconds = [s for s in read_seconds(record_dir) if s["transport"] == GENERATOR]
    notes = []
    for row in rows:
        window = [s for s in seconds if s["t"] >= row["t_start"] - 1e-9 and s["t"] + 1 <= row["t_end"] + 1e-9]
        for busy in busy_workers(window, saturated_percent, lag_limit_ms):
            what = [f"CPU {busy['cpu_percent']:.0f}%" if busy["saturated"] else "",
                    f"timer lag {busy['lag_ms']:.0f} ms" if busy["lagging"] else ""]
            notes.append(f"{transport}: step {row['step']} ({row['users']} users) not counted: worker {busy['worker']} "
                         f"could not keep up ({', '.join(filter(None, what))})")
    hit: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for i, row in enumerate(rows):
        for loss in lost_workers(seconds, row["t_start"], row["t_end"], rows[i - 1]["t_end"] if i else 0.0):
            hit.setdefault((loss["worker"], loss["last_seen"]), []).append(row)
    for loss in worker_losses(seconds):
        steps = hit.get((loss["worker"], loss["last_seen"]), [])
        where = ", ".join(f"step {row['step']} ({row['users']} users)" for row in steps) + " not counted" if steps \
            else f"step {sum(row['t_end'] < loss['last_seen'] for row in rows)} (in progress) not measured"
        notes.append(f"{transport}: worker {loss['worker']} was lost while it held {loss['users']} users (last heard "
                     f"of {loss['lost_at'] - loss['last_seen']:.0f} s before it was found gone); {where}")
    return notes


def label_samples(samples: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add step and phase to each sample: the step whose window holds it ("measure"), else -1 ("ramp")."""
    labelled = []
    for sample in samples:
        step, phase = -1, "ramp"
        for row in rows:
            if row["transport"] == sample["transport"] and row["t_start"] <= sample["t"] <= row["t_end"]:
                step, phase = row["step"], "measure"
                break
        labelled.append({**sample, "step": step, "phase": phase})
    return labelled
