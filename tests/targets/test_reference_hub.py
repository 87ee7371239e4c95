"""Unit tests of the framework-free parts: Hub, Channel, SeqSet, ticker, config."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import statistics
import time

import pytest

from rtcap.targets.reference.config import TargetConfig
from rtcap.targets.reference.hub import Hub
from rtcap.targets.reference.seqset import SeqSet
from rtcap.targets.reference.ticker import run_ticker


def sample(hub: Hub, name: str, **labels: str) -> float | None:
    return hub.metrics.registry.get_sample_value(name, labels)


def test_publish_stamps_seq_ts_channel_and_server_fields_win() -> None:
    hub = Hub()
    before = time.time()
    first = hub.publish("a", {"payload": "xx", "seq": 99, "channel": "evil", "extra": 1})
    second = hub.publish("a", {})
    assert json.loads(first.text) == {"seq": 1, "ts": first.ts, "channel": "a", "payload": "xx", "extra": 1}
    assert before <= first.ts <= time.time()
    assert second.seq == 2 and hub.publish("b", {}).seq == 1  # per-channel sequences
    assert first.text.startswith('{"seq":1,') and "\n" not in first.text
    assert sample(hub, "rtcap_events_published_total", channel="a") == 2


def test_event_is_serialised_once_and_shared_by_subscribers() -> None:
    hub = Hub()
    subs = [hub.connect("sse"), hub.connect("ws")]
    for sub in subs:
        hub.subscribe(sub, "a")
    event = hub.publish("a", {"payload": "p"})
    received = [sub.queue.get_nowait() for sub in subs]
    assert received[0] is event and received[1] is event
    assert event.sse_frame() is event.sse_frame()
    assert event.sse_frame() == b"id: 1\ndata: " + event.data + b"\n\n"


def test_typed_text_wraps_event_for_chat_without_duplicate_type() -> None:
    hub = Hub()
    plain = hub.publish("a", {"x": 1})
    typed = hub.publish("a", {"type": "publisher-type"})
    assert json.loads(plain.typed_text()) == {"type": "event", "seq": 1, "ts": plain.ts, "channel": "a", "x": 1}
    assert typed.typed_text().count('"type"') == 1
    assert json.loads(typed.typed_text())["type"] == "event"


def test_ring_buffer_keeps_last_n_and_reports_gaps() -> None:
    hub = Hub(buffer=5)
    for _ in range(8):
        hub.publish("a", {})
    ch = hub.channel("a")
    assert [e.seq for e in ch.after(0)] == [4, 5, 6, 7, 8]
    assert [e.seq for e in ch.after(5)] == [6, 7, 8]
    assert [e.seq for e in ch.after(0, limit=2)] == [4, 5]
    assert ch.after(8) == [] and ch.after(100) == []
    assert ch.gap(0) and ch.gap(2)
    assert not ch.gap(3) and not ch.gap(8)
    assert ch.etag == '"a:8"'


def test_unknown_channel_is_created_empty() -> None:
    hub = Hub()
    ch = hub.channel("new")
    assert (ch.seq, ch.after(0), ch.gap(0), ch.etag, ch.last) == (0, [], False, '"new:0"', None)
    assert "new" in hub.channels


def test_subscribe_replays_then_queues_live_without_overlap() -> None:
    hub = Hub()
    for _ in range(3):
        hub.publish("a", {})
    sub = hub.connect("sse")
    replay = hub.subscribe(sub, "a", since=1)
    hub.publish("a", {})
    assert [e.seq for e in replay] == [2, 3]
    assert sub.queue.qsize() == 1 and sub.queue.get_nowait().seq == 4
    assert hub.subscribe(hub.connect("sse"), "a") == []  # no since: live only


def test_slow_consumer_is_dropped_and_counted() -> None:
    hub = Hub(queue_size=2)
    slow, fast = hub.connect("ws"), hub.connect("ws")
    hub.subscribe(slow, "a")
    hub.subscribe(fast, "a")
    for _ in range(3):
        hub.publish("a", {})
        if fast.queue.full():
            fast.queue.get_nowait()
    assert slow.dropped and slow.closed
    assert slow not in hub.channel("a").subscribers
    assert fast in hub.channel("a").subscribers and not fast.dropped
    assert sample(hub, "rtcap_slow_consumers_dropped_total", transport="ws") == 1
    hub.disconnect(slow)
    assert sample(hub, "rtcap_open_connections", transport="ws") == 1


def test_max_streams_rejects_and_counts() -> None:
    hub = Hub(max_streams=2)
    a, b = hub.connect("sse"), hub.connect("ws")
    assert a is not None and b is not None and a.id != b.id
    assert hub.connect("chat") is None
    assert sample(hub, "rtcap_connections_rejected_total", transport="chat") == 1
    hub.disconnect(a)
    hub.disconnect(a)  # idempotent: the gauge must not go negative
    assert sample(hub, "rtcap_open_connections", transport="sse") == 0
    assert hub.connect("sse") is not None


def test_rooms_have_their_own_seq_and_vanish_when_empty() -> None:
    hub = Hub()
    a, b = hub.connect("chat"), hub.connect("chat")
    hub.join(a, "r")
    hub.join(b, "r")
    m1 = hub.say("r", {"type": "chat", "text": "hi"})
    m2 = hub.say("r", {"type": "chat", "text": "yo"})
    assert (m1.seq, m2.seq) == (1, 2)
    assert json.loads(m1.text)["room"] == "r" and "channel" not in json.loads(m1.text)
    assert a.queue.get_nowait() is m1 and b.queue.get_nowait() is m1
    assert "r" not in hub.channels  # rooms are not feed channels
    hub.disconnect(a)
    assert "r" in hub.rooms
    hub.disconnect(b)
    assert "r" not in hub.rooms


def test_wait_after_wakes_on_publish_and_times_out() -> None:
    async def scenario() -> tuple[bool, float, bool, float]:
        hub = Hub()
        ch = hub.channel("a")
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, hub.publish, "a", {})
        t0 = loop.time()
        woke = await ch.wait_after(0, 5.0)
        woke_after = loop.time() - t0
        t1 = loop.time()
        timed_out = await ch.wait_after(ch.seq, 0.1)
        return woke, woke_after, timed_out, loop.time() - t1

    woke, woke_after, timed_out, waited = asyncio.run(scenario())
    assert woke and woke_after < 1.0
    assert not timed_out and 0.09 <= waited < 1.0


def test_shutdown_releases_waiters_closes_streams_and_refuses_new() -> None:
    async def scenario() -> tuple[float, bool]:
        hub = Hub()
        sub = hub.connect("sse")
        hub.subscribe(sub, "a")
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, hub.shutdown)
        t0 = loop.time()
        await hub.channel("a").wait_after(0, 5.0)
        await asyncio.wait_for(sub.wait_closed(), 1.0)
        return loop.time() - t0, hub.connect("ws") is None

    elapsed, refused = asyncio.run(scenario())
    assert elapsed < 1.0 and refused


def test_seqset_matches_a_plain_set() -> None:
    rng = random.Random(7)
    seqs, reference = SeqSet(), set()
    for n in [rng.randint(1, 60) for _ in range(300)]:
        seqs.add(n)
        reference.add(n)
        assert all((i in seqs) == (i in reference) for i in range(62))
    runs = seqs.runs
    assert all(hi + 1 < lo2 for (_, hi), (lo2, _) in itertools.pairwise(runs))  # disjoint, non-adjacent
    assert seqs.last == max(reference)


def test_seqset_live_stream_is_one_run() -> None:
    seqs = SeqSet()
    for n in range(10, 1000):
        seqs.add(n)
    assert seqs.runs == [(10, 999)]


def test_ticker_keeps_rate_without_drift() -> None:
    rate, window = 400.0, 0.5

    async def scenario() -> list[float]:
        hub = Hub(buffer=10_000)
        sub = hub.connect("sse")
        hub.subscribe(sub, "t")
        task = asyncio.create_task(run_ticker(hub, ["t"], rate, 16))
        await asyncio.sleep(window)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return [e.ts for e in hub.channel("t").after(0)]

    stamps = asyncio.run(scenario())
    assert 0.8 * rate * window <= len(stamps) <= 1.2 * rate * window
    # Schedule-based deadlines: the n-th event sits at n/rate after the first. Sleeping
    # 1/rate per tick instead lets overshoot accumulate (tens of ms over 200 ticks).
    errors = [(ts - stamps[0]) - n / rate for n, ts in enumerate(stamps)]
    assert statistics.median(errors) < 0.005


def test_ticker_disabled_at_rate_zero() -> None:
    hub = Hub()
    asyncio.run(asyncio.wait_for(run_ticker(hub, ["t"], 0.0, 16), 1.0))
    assert hub.channel("t").seq == 0


def test_config_validates_and_normalises() -> None:
    assert TargetConfig(channels=["a", "b", "a"]).channels == ("a", "b")
    for bad in (
        {"rate": -1},
        {"payload": -1},
        {"port": 70000},
        {"channels": ()},
        {"channels": ("bad name",)},
        {"idle_timeout": 0},
        {"buffer": 0},
        {"log_level": "loud"},
    ):
        with pytest.raises(ValueError):
            TargetConfig(**bad)
