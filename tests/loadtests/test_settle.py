"""The memory settle criterion, fed numbers, and the live sample reader, fed a real file."""

import json
from pathlib import Path

import pytest

from rtcap.loadtests.generator.settle import KIB, LiveSamples, SettleRule

MIB = 1024 * KIB


def series(values: list[float], start: float = 100.0, every: float = 0.5) -> list[tuple[float, float]]:
    return [(start + i * every, v) for i, v in enumerate(values)]


def test_a_flat_tail_is_settled_and_a_rising_one_is_not() -> None:
    rule = SettleRule()
    rising = series([60 * MIB + i * 400 * KIB for i in range(10)])
    flat_tail = series([60 * MIB + min(i, 5) * 400 * KIB + (i % 2) * 4 * KIB for i in range(10)])
    assert not rule.settled(rising, now=104.5, since=100.0)
    assert rule.settled(flat_tail, now=104.5, since=100.0)


def test_tolerance_grows_with_rss() -> None:
    rule = SettleRule(tolerance_bytes=128 * KIB, tolerance_fraction=0.002)
    wobble = 300 * KIB  # more than 128 KiB, less than 0.2% of 200 MiB (409.6 KiB)
    big = series([200 * MIB + (i % 2) * wobble for i in range(6)])
    small = series([60 * MIB + (i % 2) * wobble for i in range(6)])
    assert rule.settled(big, now=102.5, since=100.0)
    assert not rule.settled(small, now=102.5, since=100.0)


def test_samples_before_the_settle_began_or_too_few_do_not_count() -> None:
    rule = SettleRule(span_s=2.0, min_samples=3)
    flat = series([50 * MIB] * 10)
    assert not rule.settled(flat, now=104.5, since=104.0)  # only 2 samples since the settle began
    assert not rule.settled(flat[:2], now=100.5, since=100.0)
    assert rule.settled(flat, now=104.5, since=102.0)
    sparse = [(100.0, 50 * MIB), (101.9, 50 * MIB), (102.0, 50 * MIB)]
    assert not rule.settled(sparse[1:], now=102.0, since=100.0)  # two close readings are not a plateau
    with pytest.raises(ValueError):
        SettleRule(min_samples=1)
    assert "128 KiB" in SettleRule().describe()


def test_live_samples_reads_appended_lines_and_waits_for_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    live = LiveSamples(path)
    assert live.read() == []  # no file yet
    with path.open("w") as handle:
        handle.write(json.dumps({"t": 1.0, "rss_bytes": 10}) + "\n")
        handle.write('{"t": 1.5, "rss_')
        handle.flush()
        assert live.read() == [(1.0, 10.0)]
        handle.write('bytes": 11}\n' + "not json\n" + json.dumps({"t": 2.0, "rss_bytes": 12}) + "\n")
    assert live.read() == [(1.0, 10.0), (1.5, 11.0), (2.0, 12.0)]
