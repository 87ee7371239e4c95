"""`rtcap check-target`: before any load, prove each declared transport works as its adapter says.

For each transport: connect, publish a few events (or wait for the server's own), check that they arrive in
order with the declared seq and ts fields, and measure connect time and the apparent clock offset; then check
that the process sampler finds the server. Blocking, Locust-free clients: this runs in the orchestrator.
"""

from __future__ import annotations

import json
import queue
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from loadtests import check_patterns
from loadtests.http_client import HTTPConnection
from loadtests.observe import ObserveError, describe, probe_for
from loadtests.publisher import PublishError, publish_once
from loadtests.sampler import read_sockstat
from loadtests.sse_client import SSEClient
from loadtests.sse_parser import SSEEvent
from loadtests.targeting import parse_body
from loadtests.ws_client import WebSocketClient
from targets.adapter import TargetAdapter
from targets.adapter_fields import FieldError

POLLED = ("poll", "longpoll", "state")
MAX_OFFSET_S = 300.0


class CheckFailed(RuntimeError):
    """One transport did not behave as declared."""


@dataclass
class CheckResult:
    """What checking one transport found."""

    transport: str
    ok: bool = False
    why: str = ""
    connect_ms: float | None = None
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


class _Poller:
    """Polls with the users' own keep-alive client and the validators of the last 200 (ETag, Last-Modified)."""

    def __init__(self, base_url: str, headers: dict[str, str], conditional: bool, timeout: float) -> None:
        self.http = HTTPConnection(base_url, timeout=timeout)
        self.headers = headers
        self.conditional = conditional
        self.validators: dict[str, str] = {}

    def get(self, url: str) -> bytes | None:
        """The body of a 200, or None for a 304; CheckFailed for any other status."""
        response = self.http.get(url, {**self.headers, **self.validators})
        if response.status == 304:
            return None
        if response.status != 200:
            raise CheckFailed(f"GET {url} answered {response.status}")
        if self.conditional:
            found = {"If-None-Match": response.headers.get("etag"),
                     "If-Modified-Since": response.headers.get("last-modified")}
            self.validators = {k: v for k, v in found.items() if v}
        return response.body

    def close(self) -> None:
        """Close the connection."""
        self.http.close()


class _Receiver:
    """Collects (message, receive time, sse id) from one connection on a background thread."""

    def __init__(self) -> None:
        self.items: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.client: Any = None
        self.stop = threading.Event()

    def run(self, loop: Any) -> None:
        """Run `loop` on a daemon thread, keeping its first exception."""
        def guarded() -> None:
            try:
                loop()
            except BaseException as error:  # noqa: BLE001 - reported by the checker, not raised on a thread
                if not self.stop.is_set():
                    self.error = error
        threading.Thread(target=guarded, daemon=True).start()


def _open(adapter: TargetAdapter, transport: str, timeout: float, receiver: _Receiver) -> float:
    """Connect `transport` and start receiving; return the connect time in ms."""
    spec = adapter.transport(transport)
    values = {"channel": adapter.channel, "room": spec.room}
    if transport == "signal":
        return check_patterns.open_signal(adapter, timeout, receiver, CheckFailed)
    if transport == "presence":
        return check_patterns.open_presence(adapter, timeout, receiver)
    if transport == "sse":
        client = receiver.client = SSEClient(adapter.url_for("sse"), headers=adapter.headers, timeout=timeout)
        connect_ms = client.connect()

        def read_sse() -> None:
            for item, received_at in client.items():
                if isinstance(item, SSEEvent):
                    receiver.items.put((parse_body(item.data), received_at, item.id))
        receiver.run(read_sse)
        return connect_ms
    if transport in ("ws", "chat"):
        client = receiver.client = WebSocketClient(adapter.url_for(transport, **values), headers=adapter.headers,
                                                   timeout=timeout)
        connect_ms = client.connect()
        subscribe = spec.render_subscribe(**values)
        if subscribe is not None:
            client.send_text(subscribe)

        def read_ws() -> None:
            while True:
                text, received_at, _wire = client.receive()
                receiver.items.put((parse_body(text), received_at, None))
        receiver.run(read_ws)
        return connect_ms
    # Polled transports: one request syncs the cursor, then poll until stopped.
    poller = receiver.client = _Poller(adapter.base_url, adapter.headers, spec.conditional, timeout)
    started = time.perf_counter()
    first = poller.get(adapter.url_for(transport, cursor="0"))
    connect_ms = (time.perf_counter() - started) * 1000.0
    body = parse_body(first) if first else []
    baseline = [adapter.extract(transport, e)[0] for e in spec.events_in(body) if adapter.is_event(transport, e)]
    cursor = spec.cursor_in(body, baseline[-1] if baseline else "0") if first else "0"
    state = {"cursor": cursor, "seen": set(baseline)}

    def read_polls() -> None:
        while not receiver.stop.is_set():
            raw = poller.get(adapter.url_for(transport, cursor=state["cursor"]))
            received_at = time.time()
            if raw is None:
                receiver.stop.wait(0.2)
                continue
            reply = parse_body(raw)
            last = None
            for event in spec.events_in(reply):
                if adapter.is_event(transport, event):
                    seq = adapter.extract(transport, event)[0]
                    last = seq
                    if seq not in state["seen"]:  # full-state polling repeats old events every time
                        state["seen"].add(seq)
                        receiver.items.put((event, received_at, None))
            state["cursor"] = spec.cursor_in(reply, last if last is not None else state["cursor"])
            if transport != "longpoll":
                receiver.stop.wait(0.2)
    receiver.run(read_polls)
    return connect_ms


def _trigger(adapter: TargetAdapter, transport: str, count: int, receiver: _Receiver) -> None:
    """Make `count` events happen: publish them, or (chat) send them; the server's own need nothing."""
    if transport == "chat":
        spec = adapter.transport("chat")
        for n in range(1, count + 1):
            receiver.client.send_text(spec.render_send(n, 16, channel=adapter.channel, room=spec.room))
    elif transport == "presence":
        for text in check_patterns.presence_messages(adapter, count):
            receiver.client.send_text(text)
    elif adapter.publish.mode == "http":
        # Numbers that keep rising across checks of several transports on one channel (a server may
        # still hold the previous check's events in its buffer).
        base = int(time.time() * 1000) + 1
        for n in range(1, count + 1):
            publish_once(adapter.publish, base + n, adapter.channel)


def check_transport(adapter: TargetAdapter, transport: str, count: int = 3, timeout: float = 10.0) -> CheckResult:
    """Connect, make `count` events happen, and check they arrive in order with the declared fields."""
    result = CheckResult(transport)
    receiver = _Receiver()
    try:
        if transport in check_patterns.REQUEST_TRANSPORTS:
            # Answers to requests, not events: every id answered and successful is the check.
            result.connect_ms, result.figures = check_patterns.check_requests(adapter, transport, count, timeout,
                                                                              CheckFailed)
            result.events, result.ok = count, True
            return result
        if transport in POLLED and adapter.publish.mode == "http":
            # Some servers give a first poll on an empty channel no cursor to follow (nchan answers 304):
            # one event beforehand gives every viewer a place in the stream, as a live channel would.
            publish_once(adapter.publish, int(time.time() * 1000), adapter.channel)
        result.connect_ms = _open(adapter, transport, timeout, receiver)
        _trigger(adapter, transport, count, receiver)
        seqs, offsets = [], []
        deadline = time.monotonic() + timeout
        while len(seqs) < count:
            remaining = deadline - time.monotonic()
            if receiver.error is not None:
                raise CheckFailed(f"connection failed after {len(seqs)} event(s): {receiver.error}")
            if remaining <= 0:
                expected = "published" if adapter.publish.mode == "http" or transport == "chat" else "from the server itself"
                raise CheckFailed(f"{len(seqs)} of {count} events {expected} arrived within {timeout:g} s")
            try:
                message, received_at, sse_id = receiver.items.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if not adapter.is_event(transport, message):
                continue
            seq, publish_ts = adapter.extract(transport, message, sse_id)
            if seqs and not seq > seqs[-1]:
                raise CheckFailed(f"seq went from {seqs[-1]!r} to {seq!r}: sequence numbers must increase")
            seqs.append(seq)
            if publish_ts is not None:
                offsets.append(received_at - publish_ts)
        result.events = len(seqs)
        if offsets:
            result.offset_ms = statistics.median(offsets) * 1000.0
            if abs(result.offset_ms) > MAX_OFFSET_S * 1000:
                raise CheckFailed(f"receive time - ts is {result.offset_ms / 1000:.0f} s: wrong ts field or ts_unit?")
            result.figures.append("delivery latency")
        else:
            result.figures.append("throughput only (messages carry no publish time)")
        result.figures += ["connect time", "bytes", "loss/duplicates/reordering"]
        result.ok = True
    except (CheckFailed, FieldError, PublishError) as error:
        result.why = str(error)
    except (OSError, ValueError, json.JSONDecodeError) as error:
        result.why = f"{error.__class__.__name__}: {error}"
    except Exception as error:  # noqa: BLE001 - a client library's own error: report it, do not crash the table
        result.why = f"{error.__class__.__name__}: {error}"
    finally:
        receiver.stop.set()
        if receiver.client is not None:
            # A WebSocket's reader thread may be blocked in recv: a handshake close would wait on it forever.
            getattr(receiver.client, "abort", receiver.client.close)()
    return result


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
        return ProcessCheck(True, how, rss_bytes=probe.read(read_sockstat()).rss_bytes)
    except Exception as error:  # noqa: BLE001 - psutil and probe errors alike
        return ProcessCheck(False, how, why=f"{error.__class__.__name__}: {error}")


def format_table(results: list[CheckResult], process: ProcessCheck) -> str:
    """The check as a plain-text table, one line per transport plus the process line."""
    rows = [("transport", "result", "connect", "events", "recv - ts", "figures / why")]
    for r in results:
        rows.append((r.transport, "ok" if r.ok else "FAILED",
                     "-" if r.connect_ms is None else f"{r.connect_ms:.1f} ms", str(r.events),
                     "-" if r.offset_ms is None else f"{r.offset_ms:.1f} ms",
                     ", ".join(r.figures) if r.ok else r.why))
    memory = "-" if process.rss_bytes is None else f"rss {process.rss_bytes / 2**20:.1f} MiB"
    rows.append(("process", "ok" if process.ok else "FAILED", "", "", memory,
                 process.how + (f": {process.why}" if process.why else "")))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths)) + "  " + row[5]
                     for row in rows)
