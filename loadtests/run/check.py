"""`rtcap check-target`: before any load, prove each declared transport works as its adapter says.

For each transport: connect, publish a few events (or wait for the server's own), check that they arrive in
order with the declared seq and ts fields, and measure connect time (polled transports: also the time to the
first answer, which for a long poll includes the hold) and the apparent clock offset; then check that the
process sampler finds the server. Blocking, Locust-free clients: this runs in the orchestrator.

This is the generic driver: it knows no transport by name. What is particular to one transport lives in the
Locust-free module its record names as `check_module` (targets/transports.py), under
rtcap.loadtests.transports: `open_check` connects and starts filling a checking.Receiver, `send_check` (rooms)
sends the check's own messages, and request/response transports have `check_requests` instead. A module
without the hook its record needs is an error naming both, never a fallback to another transport's check.

Only fresh events count: an event whose message carries a publish time must have been published after the
check started (ts >= start - CLOCK_TOLERANCE_S) and have arrived within MAX_DELIVERY_S of it. Anything else
is a stale page, replayed history, a clock offset or a ts in the wrong unit, and passing on it would measure
nothing: such events are ignored, and the check fails naming the likely cause if no fresh ones come.

Publishing is paced by arrivals: the next event is published when the last one arrived, or PUBLISH_RETRY_S
after it if it did not. A server that answers a held long poll only with events published while it is held
(a GRIP/Pushpin backend) therefore gets events while its poll is held, and one published in the instant
between two polls is simply followed by another.
"""

from __future__ import annotations

import importlib
import json
import queue
import statistics
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from rtcap.loadtests.run.observe import ObserveError, describe, probe_for
from rtcap.loadtests.run.publisher import PublishError, publish_once
from rtcap.loadtests.run.sampler import read_sockstat
from rtcap.loadtests.transports.checking import CheckFailed, Receiver
from rtcap.targets.adapter import TargetAdapter
from rtcap.targets.adapter_fields import FieldError
from rtcap.targets.transports import Transport, UnknownTransport, lookup

CHECK_PACKAGE = "rtcap.loadtests.transports"
"""Where each record's `check_module` lives."""
MAX_DELIVERY_S = 5.0
"""Longest receive time - ts an event may show and still be one the check just made happen."""
CLOCK_TOLERANCE_S = 1.0
"""How far an event's ts may lie before the check's start (or after its arrival): clock granularity and skew."""
PUBLISH_RETRY_S = 0.5
"""Publish another event when the last one has not arrived after this long."""
PUBLISHES_PER_EVENT = 4
"""At most this many publishes per event the check waits for (events lost between polls are re-published)."""


@dataclass
class CheckResult:
    """What checking one transport found."""

    transport: str
    ok: bool = False
    why: str = ""
    connect_ms: float | None = None
    """TCP connect (polled), response head (sse) or handshake (WebSocket) time."""
    first_answer_ms: float | None = None
    """Polled transports: from sending the first poll to its answer (a long poll's hold included)."""
    events: int = 0
    offset_ms: float | None = None
    figures: list[str] = field(default_factory=list)


@dataclass
class ProcessCheck:
    """Whether the sampler can observe the target process."""

    ok: bool
    how: str
    rss_bytes: int | None = None
    why: str = ""
    members: list[tuple[int, str, int]] = field(default_factory=list)
    """(pid, name, RSS) of every process the sampler will sum: what is counted, and so what is not."""


class _CheckPublisher:
    """Publishes the check's events; {seq} keeps rising across checks of several transports on one channel (a
    server may still hold the previous check's events in its buffer)."""

    def __init__(self, adapter: TargetAdapter, limit: int) -> None:
        self.spec = adapter.publish
        self.channel = adapter.channel
        self.base = int(time.time() * 1000)
        self.limit = limit
        self.sent = 0

    def publish(self) -> bool:
        """Publish the next event; False once `limit` events were published."""
        if self.sent >= self.limit:
            return False
        self.sent += 1
        publish_once(self.spec, self.base + self.sent, self.channel, counter=self.sent)
        return True


def check_module(record: Transport) -> ModuleType:
    """The module holding `record`'s check hooks (imported on first use: it must not import Locust)."""
    return importlib.import_module(f"{CHECK_PACKAGE}.{record.check_module}")


def check_hook(record: Transport, hook: str) -> Any:
    """Hook `hook` of `record`'s check module; CheckFailed naming the module and the hook if it has none."""
    module = check_module(record)
    found = getattr(module, hook, None)
    if not callable(found):
        raise CheckFailed(f"transport {record.name!r} cannot be checked: its check module {module.__name__} "
                          f"has no {hook}() (a {record.kind} transport needs it)")
    return found


def _unit_hint(ts: float, received_at: float, unit: str | None) -> str | None:
    """If ts is off from now by a power of 1000, the ts_unit that would read it right (or the factor)."""
    for power in (3, 6, 9, -3, -6, -9):
        if abs(ts * 10.0 ** power - received_at) < 86_400:
            divisors = {"s": 0, "ms": 3, "us": 6, "ns": 9}
            if unit in divisors:
                right = next((u for u, d in divisors.items() if d == divisors[unit] - power), None)
                if right is not None:
                    return f'ts is in {right}, not {unit}: set ts_unit = "{right}"'
            return f"ts is off by a factor of 10^{power}: wrong ts unit (ms vs s)?"
    return None


def _stale_cause(ts: float, received_at: float, started: float, unit: str | None) -> str:
    """The likely reason an event is not fresh, in words."""
    hint = _unit_hint(ts, received_at, unit)
    if hint is not None:
        return hint
    lag = received_at - ts
    if lag < 0:
        return f"clock offset: the server's clock is ahead of this machine's by ~{-lag:.1f} s"
    if ts < started - CLOCK_TOLERANCE_S:
        return (f"published {started - ts:.1f} s before the check started: a stale page, a cached answer or replayed "
                f"history (or a clock offset: the server's clock is behind this machine's by ~{lag:.0f} s)")
    return f"delivered {lag:.1f} s after publishing: the server holds events back (or a clock offset of ~{lag:.0f} s)"


def _is_fresh(ts: float, received_at: float, started: float) -> bool:
    """Published after the check started, and arrived within MAX_DELIVERY_S (CLOCK_TOLERANCE_S either way)."""
    lag = received_at - ts
    return ts >= started - CLOCK_TOLERANCE_S and -CLOCK_TOLERANCE_S <= lag <= MAX_DELIVERY_S


def _ts_unit(adapter: TargetAdapter, transport: str) -> str | None:
    return adapter.transport(transport).message.ts_unit if type(adapter).extract is TargetAdapter.extract else None


def check_transport(adapter: TargetAdapter, transport: str, count: int = 3, timeout: float = 10.0) -> CheckResult:
    """Connect, make `count` events happen, and check that fresh ones arrive in order with the declared fields."""
    result = CheckResult(transport)
    receiver = Receiver()
    started = time.time()
    try:
        record = lookup(transport)  # an unknown name is refused, never checked as some other transport
        if record.request_response:
            # Answers to requests, not events: every id answered and successful is the check.
            result.connect_ms, result.figures = check_hook(record, "check_requests")(adapter, record, count, timeout)
            result.events, result.ok = count, True
            return result
        open_check = check_hook(record, "open_check")  # both found before the target is touched
        send_check = check_hook(record, "send_check") if record.kind == "room" else None
        publisher = None
        if adapter.publish.mode == "http" and record.kind != "room":  # a room's events are the check's messages
            publisher = _CheckPublisher(adapter, count * PUBLISHES_PER_EVENT + 1)
        if record.polled and publisher is not None:
            # Some servers give a first poll on an empty channel no cursor to follow (nchan answers 304):
            # one event beforehand gives every viewer a place in the stream, as a live channel would.
            publisher.publish()
        result.connect_ms = open_check(adapter, record, timeout, receiver)
        if send_check is not None:  # a room's events are the check's own messages, sent on its connection
            send_check(adapter, record, count, receiver)
        seqs, offsets = [], []
        stale: tuple[int, Any, float, float] = (0, None, 0.0, 0.0)  # (how many, the last one's seq, ts, receive time)
        deadline = time.monotonic() + timeout
        publish_at = time.monotonic() if publisher is not None else deadline
        rounds = 0
        while len(seqs) < count:
            now = time.monotonic()
            if receiver.error is not None:
                raise CheckFailed(f"connection failed after {len(seqs)} event(s): {receiver.error}")
            if now >= deadline:
                raise CheckFailed(_missing_events(adapter, transport, len(seqs), count, timeout, stale, started))
            if publisher is not None and now >= publish_at:
                # Short polls get the first events in one burst, so that one answer lists several and shows
                # their order; the rest go one at a time, each once the last arrived (or went unseen).
                burst = count if record.interval and rounds == 0 else 1
                published = [publisher.publish() for _ in range(burst)]
                publish_at = now + PUBLISH_RETRY_S if all(published) else deadline
                rounds += 1
            try:
                wait = min(deadline, publish_at, now + PUBLISH_RETRY_S) - now  # a receiver error shows within it
                message, received_at, sse_id = receiver.items.get(timeout=max(0.0, wait))
            except queue.Empty:
                continue
            if not adapter.is_event(transport, message):
                continue
            seq, publish_ts = adapter.extract(transport, message, sse_id)
            if publish_ts is not None and not _is_fresh(publish_ts, received_at, started):
                stale = (stale[0] + 1, seq, publish_ts, received_at)
                continue
            if seqs and not seq > seqs[-1]:
                raise CheckFailed(f"seq went from {seqs[-1]!r} to {seq!r}: sequence numbers must increase"
                                  + (' (a list newest first needs order = "desc")' if record.polled else ""))
            seqs.append(seq)
            if publisher is not None:
                publish_at = time.monotonic()  # it arrived: the next one now
            if publish_ts is not None:
                offsets.append(received_at - publish_ts)
        result.events = len(seqs)
        if offsets:
            result.offset_ms = statistics.median(offsets) * 1000.0
            result.figures.append("delivery latency")
        else:
            result.figures.append("throughput only (messages carry no publish time)")
        result.figures += ["connect time", "bytes", "loss/duplicates/reordering"]
        result.ok = True
    except (CheckFailed, FieldError, PublishError, UnknownTransport) as error:
        result.why = str(error)
    except (OSError, ValueError, json.JSONDecodeError) as error:
        result.why = f"{error.__class__.__name__}: {error}"
    except Exception as error:  # noqa: BLE001 - a client library's own error: report it, do not crash the table
        result.why = f"{error.__class__.__name__}: {error}"
    finally:
        receiver.stop.set()
        result.first_answer_ms = receiver.first_answer_ms
        if receiver.client is not None:
            # A WebSocket's reader thread may be blocked in recv: a handshake close would wait on it forever.
            getattr(receiver.client, "abort", receiver.client.close)()
    return result


def _missing_events(adapter: TargetAdapter, transport: str, got: int, count: int, timeout: float,
                    stale: tuple[int, Any, float, float], started: float) -> str:
    """Why the check is short of events: how many came, and what the stale ones say about the cause."""
    expected = ("published" if adapter.publish.mode == "http" or lookup(transport).kind == "room"
                else "from the server itself")
    why = f"{got} of {count} events {expected} arrived within {timeout:g} s"
    ignored, seq, ts, received_at = stale
    if not ignored:
        return why
    cause = _stale_cause(ts, received_at, started, _ts_unit(adapter, transport))
    return (f"{why}; {ignored} stale event(s) ignored (the last: seq {seq!r}, recv - ts = "
            f"{(received_at - ts) * 1000:,.0f} ms; fresh means ts >= check start - {CLOCK_TOLERANCE_S:g} s and "
            f"recv - ts <= {MAX_DELIVERY_S:g} s). Likely cause: {cause}")


def check_process(adapter: TargetAdapter, started_pid: int | None = None) -> ProcessCheck:
    """Can the sampler read the target's memory? (Client-side figures work either way.)"""
    how = describe(adapter)
    try:
        probe = probe_for(adapter, started_pid)
    except ObserveError as error:
        return ProcessCheck(False, how, why=str(error))
    if probe is None:
        return ProcessCheck(True, how, why="memory per connection and target CPU will be unavailable")
    try:
        members = probe.members() if hasattr(probe, "members") else []
        return ProcessCheck(True, how, rss_bytes=probe.read(read_sockstat()).rss_bytes, members=members)
    except Exception as error:  # noqa: BLE001 - psutil and probe errors alike
        return ProcessCheck(False, how, why=f"{error.__class__.__name__}: {error}")


def format_table(results: list[CheckResult], process: ProcessCheck) -> str:
    """The check as a plain-text table, one line per transport plus the process line."""
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    rows = [("transport", "result", "connect", "first answer", "events", "recv - ts", "figures / why")]
    for r in results:
        rows.append((r.transport, "ok" if r.ok else "FAILED", ms(r.connect_ms), ms(r.first_answer_ms), str(r.events),
                     ms(r.offset_ms), ", ".join(r.figures) if r.ok else r.why))
    memory = "-" if process.rss_bytes is None else f"rss {process.rss_bytes / 2**20:.1f} MiB"
    rows.append(("process", "ok" if process.ok else "FAILED", "", "", "", memory,
                 process.how + (f": {process.why}" if process.why else "")))
    for pid, name, rss in process.members:
        rows.append(("", "", "", "", "", f"rss {rss / 2**20:.1f} MiB", f"sums pid {pid} ({name})"))
    columns = len(rows[0]) - 1
    widths = [max(len(row[i]) for row in rows) for i in range(columns)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row[:columns], widths)) + "  " + row[columns]
                     for row in rows)
