"""Calibration knobs of the reference target: ballast, delivery delay and injected faults.

Real servers (`python -m rtcap.targets.reference --port 0 ...`) and real clients; each knob must produce
exactly the known answer a measurement is then checked against.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest

from rtcap.targets.reference import TargetConfig, create_app
from rtcap.targets.reference.__main__ import build_arg_parser, config_from_args, main
from rtcap.targets.reference.calibration import Calibration, make_ballast
from rtcap.targets.reference.hub import Hub
from rtcap.targets.reference.metrics import Metrics
from tests.targets.conftest import SSEStream, Target

MiB = 1 << 20
KINDS = ("drop", "duplicate", "swap")


# ---------------------------------------------------------------- helpers


def sse_events(stream: SSEStream) -> Iterator[tuple[int, float, float]]:
    """(seq, ts, receive time) of each SSE event; the id line must agree with the seq."""
    while True:
        got = stream.next_event()
        now = time.time()
        assert got["id"] == got["event"]["seq"]
        yield got["id"], got["event"]["ts"], now


def ws_events(ws: Any) -> Iterator[tuple[int, float, float]]:
    """(seq, ts, receive time) of each feed event of a /ws connection (control frames skipped)."""
    while True:
        msg = json.loads(ws.recv())
        now = time.time()
        if "seq" in msg:
            yield msg["seq"], msg["ts"], now


def take(events: Iterator[tuple[int, float, float]], n: int) -> list[tuple[int, float, float]]:
    return [next(events) for _ in range(n)]


def until_past(events: Iterator[tuple[int, float, float]], span: int) -> list[int]:
    """Seqs received until one is `span` past the first, then only those <= a cut a few below the last.

    Swaps move an event by one place and duplicates are adjacent, so trimming the last few seqs
    leaves a window in which every rule has played out; the cut is never a multiple of 5, so it
    cannot split a swapped pair (k*5+1 arrives before k*5).
    """
    seqs = [next(events)[0]]
    while seqs[-1] < seqs[0] + span:
        seqs.append(next(events)[0])
    cut = max(seqs) - 3
    while cut % 5 == 0:
        cut -= 1
    return [s for s in seqs if s <= cut]


def injected(t: Target) -> dict[str, dict[str, int]]:
    return t.get_json("/healthz")["calibration"]["injected"]


def wait_streams_closed(t: Target) -> None:
    """Wait until the server has ended every stream (its senders are done counting)."""
    for transport in ("sse", "ws"):
        t.wait_metric("rtcap_open_connections", lambda v: v == 0, transport=transport)


def publish_many(t: Target, channel: str, n: int) -> None:
    for _ in range(n):
        t.publish(channel)


# ---------------------------------------------------------------- command line and config


def test_calibration_flags_parse_and_default_to_off() -> None:
    config = config_from_args(build_arg_parser().parse_args([]))
    assert config == TargetConfig() and not config.calibrated
    knobs = (config.ballast, config.delay_ms, config.drop_every, config.duplicate_every, config.swap_every)
    assert knobs == (0, 0, 0, 0, 0)
    assert [config.ballast_for(t) for t in ("sse", "ws", "chat")] == [0, 0, 0]
    argv = "--ballast 100 --ballast-ws 0 --ballast-chat 7 --delay-ms 2.5"
    argv += " --drop-every 10 --duplicate-every 7 --swap-every 5"
    config = config_from_args(build_arg_parser().parse_args(argv.split()))
    assert [config.ballast_for(t) for t in ("sse", "ws", "chat", "poll", "longpoll")] == [100, 0, 7, 0, 0]
    assert (config.delay_ms, config.drop_every, config.duplicate_every, config.swap_every) == (2.5, 10, 7, 5)
    assert config.calibrated
    assert TargetConfig(ballast=1).calibrated is False  # ballast changes no delivery path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ballast", "-1"], "--ballast: must be >= 0"),
        (["--ballast", "1.5"], "--ballast: expected an integer"),
        (["--ballast-sse", "-1"], "--ballast-sse: must be >= 0"),
        (["--ballast-ws", "-4096"], "--ballast-ws: must be >= 0"),
        (["--ballast-chat", "-1"], "--ballast-chat: must be >= 0"),
        (["--delay-ms", "-1"], "--delay-ms: must be >= 0"),
        (["--delay-ms", "nan"], "--delay-ms: must be >= 0"),
        (["--delay-ms", "inf"], "--delay-ms: must be <= 3600000"),
        (["--drop-every", "-1"], "--drop-every: must be >= 0"),
        (["--duplicate-every", "-7"], "--duplicate-every: must be >= 0"),
        (["--swap-every", "-5"], "--swap-every: must be >= 0"),
        (["--swap-every", "x"], "--swap-every: expected an integer"),
    ],
)
def test_invalid_calibration_flags_are_argparse_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "bad",
    [
        {"ballast": -1},
        {"ballast_by": {"sse": -1}},
        {"ballast_by": {"ndjson": -1}},
        {"ballast_by": {"chat": -1}},
        {"ballast_by": {"poll": 1}},
        {"delay_ms": -0.5},
        {"delay_ms": float("nan")},
        {"drop_every": -1},
        {"duplicate_every": -1},
        {"swap_every": -1},
    ],
)
def test_config_rejects_negative_calibration(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        TargetConfig(**bad)


# ---------------------------------------------------------------- unit level


def test_ballast_is_resident_per_stream_and_released() -> None:
    assert make_ballast(0) is None
    buf = make_ballast(10_000)
    assert buf is not None and len(buf) == 10_000 and buf[0] == buf[4096] == buf[8192] == 1
    hub = Hub(ballast={"sse": 8192, "ws": 0})
    sse, ws, chat = hub.connect("sse"), hub.connect("ws"), hub.connect("chat")
    assert sse is not None and ws is not None and chat is not None
    assert sse.ballast is not None and len(sse.ballast) == 8192
    assert ws.ballast is None and chat.ballast is None
    assert hub.ballast_held() == 8192
    hub.disconnect(sse)
    assert sse.ballast is None and hub.ballast_held() == 0


def shaped(seqs: range, **knobs: int) -> tuple[list[int], dict[str, int]]:
    """One poll response over `seqs` with the given knobs: (seqs listed, faults counted)."""
    hub = Hub()
    events = [hub.publish("c", {}) for _ in seqs]
    cal = Calibration(TargetConfig(**knobs), Metrics())
    out = [e.seq for e in cal.shape(events, "poll")]
    return out, {kind: cal.counts[kind]["poll"] for kind in KINDS}


def test_fault_rules_are_defined_by_seq() -> None:
    assert shaped(range(1, 31), drop_every=10) == (
        [s for s in range(1, 31) if s % 10],
        {"drop": 3, "duplicate": 0, "swap": 0},
    )
    out, counts = shaped(range(1, 22), duplicate_every=7)
    assert Counter(out) == Counter([*range(1, 22), 7, 14, 21]) and out[6:8] == [7, 7] and out[-2:] == [21, 21]
    assert counts == {"drop": 0, "duplicate": 3, "swap": 0}
    # 5 and 10 go after their successor; 15 ends the response, so it has no partner and stays put.
    assert shaped(range(1, 16), swap_every=5) == (
        [1, 2, 3, 4, 6, 5, 7, 8, 9, 11, 10, 12, 13, 14, 15],
        {"drop": 0, "duplicate": 0, "swap": 2},
    )
    # Order of the rules: drop, then swap, then duplicate. 10 is dropped (not held), 15 is held
    # until 16, 14 is written twice, and a candidate that is a partner is not held (N=1).
    assert shaped(range(1, 17), drop_every=10, swap_every=5, duplicate_every=14) == (
        [1, 2, 3, 4, 6, 5, 7, 8, 9, 11, 12, 13, 14, 14, 16, 15],
        {"drop": 1, "duplicate": 1, "swap": 2},
    )
    assert shaped(range(1, 6), swap_every=1)[0] == [2, 1, 4, 3, 5]


def test_app_exports_injected_counters_at_zero() -> None:
    app = create_app(TargetConfig())
    registry = app.state.metrics.registry
    for kind in KINDS:
        for transport in ("poll", "longpoll", "sse", "ws"):
            assert registry.get_sample_value("rtcap_injected_total", {"kind": kind, "transport": transport}) == 0
    assert app.state.calibration.describe(0)["injected"]["drop"] == {"poll": 0, "longpoll": 0, "sse": 0, "ndjson": 0, "ws": 0}


# ---------------------------------------------------------------- ballast


def test_ballast_memory_is_resident_per_connection(start_target: Callable[..., Target]) -> None:
    t = start_target("--rate", "0", "--ballast", str(MiB))
    health = t.get_json("/healthz")["calibration"]
    assert health["ballast_bytes"] == {"sse": MiB, "ndjson": MiB, "ws": MiB, "chat": MiB} and health["ballast_held_bytes"] == 0
    proc = psutil.Process(t.pid)

    def open_all(n: int) -> tuple[list[SSEStream], list[Any]]:
        sse = [t.sse("/sse") for _ in range(n)]
        ws = [t.ws("/ws") for _ in range(n)]
        assert all(s.status == 200 for s in sse)
        t.wait_metric("rtcap_open_connections", lambda v: v == n, transport="sse")
        t.wait_metric("rtcap_open_connections", lambda v: v == n, transport="ws")
        return sse, ws

    def close_all(sse: list[SSEStream], ws: list[Any]) -> None:
        for conn in [*sse, *ws]:
            conn.close()
        wait_streams_closed(t)

    # Warm up: the first connection of each kind allocates one-off state (imports, buffers).
    close_all(*open_all(1))
    assert t.get_json("/healthz")["calibration"]["ballast_held_bytes"] == 0
    before = proc.memory_info().rss
    sse, ws = open_all(20)
    try:
        assert t.get_json("/healthz")["calibration"]["ballast_held_bytes"] == 40 * MiB
        held = proc.memory_info().rss
        assert 40 * MiB <= held - before <= 55 * MiB, (held - before) / MiB
    finally:
        close_all(sse, ws)
    assert t.get_json("/healthz")["calibration"]["ballast_held_bytes"] == 0
    # Each ballast is its own mapping, unmapped with its connection: RSS really goes down again.
    released = held - proc.memory_info().rss
    assert released >= 38 * MiB, released / MiB


# ---------------------------------------------------------------- delay


def latencies_ms(t: Target, n: int = 40) -> dict[str, tuple[float, list[int]]]:
    """Median receive time - ts (ms) and the seqs of `n` events over SSE and over the ws feed, at once."""
    sse = t.sse("/sse")
    ws = t.ws("/ws")
    try:
        with ThreadPoolExecutor(2) as pool:
            jobs = {"sse": pool.submit(take, sse_events(sse), n), "ws": pool.submit(take, ws_events(ws), n)}
            got = {name: job.result() for name, job in jobs.items()}
    finally:
        sse.close()
        ws.close()
    return {
        name: (statistics.median((recv - ts) * 1000 for _, ts, recv in events), [seq for seq, _, _ in events])
        for name, events in got.items()
    }


def test_delay_shifts_delivery_latency_and_keeps_order(start_target: Callable[..., Target]) -> None:
    delayed = start_target("--rate", "20", "--delay-ms", "100")
    plain = start_target("--rate", "20")
    with ThreadPoolExecutor(2) as pool:
        slow_job, fast_job = pool.submit(latencies_ms, delayed), pool.submit(latencies_ms, plain)
        slow, fast = slow_job.result(), fast_job.result()
    for name in ("sse", "ws"):
        median, seqs = slow[name]
        assert 95 <= median <= 130, (name, median)
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (name, seqs)
        median, seqs = fast[name]
        assert median < 30, (name, median)
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (name, seqs)

    # Polls see the channel as it was 100 ms ago: nothing younger is listed, counted in seq or the ETag.
    for _ in range(5):
        start = time.time()
        status, headers, body = delayed.request("GET", "/poll?since=0")
        now = time.time()
        doc = json.loads(body)
        events = doc["events"]
        assert status == 200 and events and all(now - e["ts"] >= 0.1 for e in events)
        assert doc["seq"] == events[-1]["seq"] and headers["etag"] == f'"live:{doc["seq"]}"'
        # ...and no more than that is hidden: at 20 events/s the newest listed is under 150 ms old.
        assert start - events[-1]["ts"] < 0.1 + 0.05 + 0.03
    # A long poll wakes on the next event and answers once it is 100 ms old.
    cursor = delayed.get_json("/poll")["seq"]
    for _ in range(3):
        doc = delayed.get_json(f"/poll?since={cursor}&wait=5")
        late = (time.time() - doc["events"][0]["ts"]) * 1000
        assert doc["events"][0]["seq"] == cursor + 1 and 95 <= late <= 160, late
        cursor = doc["seq"]


# ---------------------------------------------------------------- injected faults


def live_window(t: Target, span: int = 60) -> dict[str, list[int]]:
    """Seqs seen by one SSE subscriber, one ws feed and a short-polling client over `span` live events."""

    def sse_window() -> list[int]:
        stream = t.sse("/sse")
        try:
            return until_past(sse_events(stream), span)
        finally:
            stream.close()

    def ws_window() -> list[int]:
        ws = t.ws("/ws")
        try:
            return until_past(ws_events(ws), span)
        finally:
            ws.close()

    def poll_window() -> list[int]:
        cursor = t.get_json("/poll")["seq"]
        seqs: list[int] = []
        deadline = time.monotonic() + 10
        while (not seqs or seqs[-1] < seqs[0] + span) and time.monotonic() < deadline:
            doc = t.get_json(f"/poll?since={cursor}")
            seqs += [e["seq"] for e in doc["events"]]
            cursor = doc["seq"]
            time.sleep(0.05)
        return seqs

    with ThreadPoolExecutor(3) as pool:
        jobs = {"sse": pool.submit(sse_window), "ws": pool.submit(ws_window), "poll": pool.submit(poll_window)}
        windows = {name: job.result() for name, job in jobs.items()}
    wait_streams_closed(t)
    return windows


def exact_run(t: Target, channel: str, expected: list[int]) -> tuple[list[int], dict[str, dict[str, int]]]:
    """Publish 100 events on a quiet channel, then replay them to one SSE (Last-Event-ID 0) and one
    ws feed (since=0), which must deliver exactly `expected`, and to one poll (since=0).

    Returns what the poll listed and the faults counted meanwhile, per kind and transport.
    """
    before = injected(t)
    publish_many(t, channel, 100)
    stream = t.sse(f"/sse?channel={channel}", headers={"Last-Event-ID": "0"})
    ws = t.ws(f"/ws?channel={channel}&since=0")
    try:
        assert [seq for seq, _, _ in take(sse_events(stream), len(expected))] == expected
        assert [seq for seq, _, _ in take(ws_events(ws), len(expected))] == expected
        # A resume on the same connection repeats nothing: every seq was already decided.
        ws.send(json.dumps({"type": "resume", "since": 0}))
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv())["type"] == "pong"
    finally:
        stream.close()
        ws.close()
    polled = [e["seq"] for e in t.get_json(f"/poll?channel={channel}&since=0")["events"]]
    wait_streams_closed(t)
    after = injected(t)
    assert t.metric("rtcap_injected_total", kind="drop", transport="sse") == after["drop"]["sse"]
    return polled, {kind: {tr: after[kind][tr] - before[kind][tr] for tr in ("sse", "ws", "poll")} for kind in KINDS}


def test_drop_every_removes_exactly_the_multiples(start_target: Callable[..., Target]) -> None:
    t = start_target("--rate", "50", "--drop-every", "10")
    for name, seqs in live_window(t).items():
        assert seqs == sorted(set(seqs)), (name, seqs)  # no duplicates, no reordering
        missing = set(range(seqs[0], seqs[-1] + 1)) - set(seqs)
        assert missing == {s for s in range(seqs[0], seqs[-1] + 1) if s % 10 == 0}, (name, seqs)
    # Replays (Last-Event-ID, ws since, poll since) leave the same seqs out; exactly 10 per 100 per client.
    expected = [s for s in range(1, 101) if s % 10]
    polled, counted = exact_run(t, "exact", expected)
    assert polled == expected
    assert counted == {
        "drop": {"sse": 10, "ws": 10, "poll": 10},
        "duplicate": {"sse": 0, "ws": 0, "poll": 0},
        "swap": {"sse": 0, "ws": 0, "poll": 0},
    }
    # The dropped events stay in the channel: its seq counts them, and without the knob they would show.
    assert t.get_json("/poll?channel=exact&since=99") == {"channel": "exact", "seq": 100, "events": []}


def test_duplicate_every_repeats_exactly_the_multiples(start_target: Callable[..., Target]) -> None:
    t = start_target("--rate", "50", "--duplicate-every", "7")
    for name, seqs in live_window(t).items():
        counts = Counter(seqs)
        assert set(counts) == set(range(seqs[0], seqs[-1] + 1)), (name, seqs)  # nothing lost
        assert {s for s, c in counts.items() if c == 2} == {s for s in counts if s % 7 == 0}, (name, seqs)
        assert max(counts.values()) == 2
        assert seqs == sorted(seqs), (name, seqs)  # the copies are adjacent
    expected = sorted([*range(1, 101), *range(7, 101, 7)])
    polled, counted = exact_run(t, "exact", expected)
    assert polled == expected
    assert counted["duplicate"] == {"sse": 14, "ws": 14, "poll": 14}
    assert counted["drop"] == counted["swap"] == {"sse": 0, "ws": 0, "poll": 0}


def test_swap_every_sends_each_multiple_after_its_successor(start_target: Callable[..., Target]) -> None:
    t = start_target("--rate", "50", "--swap-every", "5")
    for name, seqs in live_window(t).items():
        lo, hi = min(seqs), max(seqs)
        assert sorted(seqs) == list(range(lo, hi + 1)), (name, seqs)  # nothing lost or repeated
        if name == "poll":
            continue  # swaps happen within one response; the exact run below checks polls
        for i, seq in enumerate(seqs):
            if seq % 5 == 0:
                assert i > 0 and seqs[i - 1] == seq + 1, (name, seqs)
        assert seqs == swapped(lo, hi, 5), (name, seqs)  # and everything else in seq order
    # 5, 10, ... 95 each go right after their successor; 100 waits for a 101 that never comes.
    expected = swapped(1, 99, 5)
    assert expected[:10] == [1, 2, 3, 4, 6, 5, 7, 8, 9, 11]
    polled, counted = exact_run(t, "exact", expected)
    # A poll lists the whole buffer in one response: 100 ends it, so it is listed in place.
    assert polled == [*expected, 100]
    assert counted["swap"] == {"sse": 19, "ws": 19, "poll": 19}
    assert counted["drop"] == counted["duplicate"] == {"sse": 0, "ws": 0, "poll": 0}


def swapped(lo: int, hi: int, n: int) -> list[int]:
    """Seqs lo..hi in the order --swap-every n writes them (each multiple of n after its successor)."""
    out: list[int] = []
    seq = lo
    while seq <= hi:
        if seq % n == 0 and seq < hi:
            out += [seq + 1, seq]
            seq += 2
        else:
            out.append(seq)
            seq += 1
    return out
