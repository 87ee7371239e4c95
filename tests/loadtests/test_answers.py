"""The per-answer accounting of polling viewers (304s and the bytes they saved, cache hits, misses and Age), alone
and in real headless Locust runs on loopback: with and without validators, and against a target with a cache."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rtcap.loadtests.transports.answers import AnswerMeter, age_seconds, cache_hit
from rtcap.targets.launch import LaunchedTarget
from tests.conftest import launch_reference
from tests.loadtests.locust_run import finish, locust_stats, start_locust
from tests.loadtests.polled import adapter_file


def test_a_304_saves_the_last_full_answer_minus_its_own_bytes() -> None:
    meter = AnswerMeter()
    assert meter.measure(304, {}, 150) == {"not_modified": 1}  # nothing held yet: nothing to compare with
    assert meter.measure(200, {}, 900) == {}
    assert meter.measure(304, {}, 150) == {"not_modified": 1, "bytes_saved": 750}
    assert meter.measure(200, {}, 400) == {}
    assert meter.measure(304, {}, 150) == {"not_modified": 1, "bytes_saved": 250}  # the newest full answer
    assert meter.measure(500, {}, 100) == {}


def test_cache_status_words_and_age() -> None:
    assert cache_hit("HIT") and cache_hit("hit, MISS") and cache_hit("STALE") and cache_hit(" UPDATING")
    assert not cache_hit("MISS") and not cache_hit("MISS, HIT") and not cache_hit("EXPIRED") and not cache_hit("")
    assert age_seconds("12") == 12 and age_seconds(None) == 0 and age_seconds("-3") == 0 and age_seconds("x") == 0


def test_cache_answers_are_counted_only_with_a_cache_header() -> None:
    meter = AnswerMeter("X-Cache")
    assert meter.measure(200, {"x-cache": "HIT", "age": "3"}, 500) == {"cache_hits": 1, "cache_age_s": 3}
    assert meter.measure(304, {"x-cache": "MISS"}, 100) == {"not_modified": 1, "bytes_saved": 400,
                                                            "cache_misses": 1, "cache_age_s": 0}
    assert meter.measure(200, {}, 500) == {}  # no header on this answer: neither hit nor miss
    assert AnswerMeter().measure(200, {"x-cache": "HIT"}, 500) == {}  # no cache_header configured


def test_conditional_polls_count_their_304s_and_the_bytes_they_saved(reference_url: str, tmp_path: Path) -> None:
    # A channel nobody publishes on: every answer after the first is the same "nothing new".
    channel = f"quiet-{uuid.uuid4().hex[:8]}"
    args = ("--poll-interval", "0.1", "--channel", channel)
    with_validators = start_locust(reference_url, "PollUser", 2, 3, tmp_path / "cond", *args)
    without = start_locust(reference_url, "PollUser", 2, 3, tmp_path / "plain", *args, "--no-conditional-get")
    cond = finish(with_validators, tmp_path / "cond")["poll"]
    plain = finish(without, tmp_path / "plain")["poll"]
    assert cond["errors"] == plain["errors"] == 0 and cond["requests"] >= 20 and plain["requests"] >= 20
    assert cond["not_modified"] == cond["requests"] - 2  # each viewer's first answer is a 200
    assert plain.get("not_modified", 0) == plain.get("bytes_saved", 0) == 0
    # Each 304 saved what the full answer moves minus what the 304 moved: with those bytes added back, a
    # conditional poll costs what an unconditional one does, to the byte.
    full_answer = plain["bytes_received"] / plain["requests"]
    assert (cond["bytes_received"] + cond["bytes_saved"]) / cond["requests"] == pytest.approx(full_answer, abs=1.0)
    assert cond["bytes_saved"] / cond["not_modified"] > 20  # a 304 has no body nor its content headers


@pytest.fixture(scope="module")
def cached_target() -> Iterator[LaunchedTarget]:
    """A reference target publishing 20 events/s whose short polls and states are cached for 2 s."""
    target = launch_reference("--cache-ttl", "2", rate=20)
    yield target
    target.stop()


def _target_counters(base_url: str) -> dict[tuple[str, str | None], float]:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, s.labels.get("endpoint")): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_cache_hits_and_misses_split_the_requests_and_staleness_grows(cached_target: LaunchedTarget,
                                                                      tmp_path: Path) -> None:
    base_url = cached_target.adapter.base_url
    adapter = str(adapter_file(tmp_path, base_url))
    polls = start_locust(base_url, "PollUser", 4, 6, tmp_path / "poll", "--target", adapter, "--poll-interval", "0.2")
    states = start_locust(base_url, "StateUser", 3, 6, tmp_path / "state", "--target", adapter, "--poll-interval", "0.2")
    poll = finish(polls, tmp_path / "poll")["poll"]
    state = finish(states, tmp_path / "state")["state"]
    assert poll["errors"] == state["errors"] == 0
    for totals in (poll, state):
        assert totals["cache_hits"] + totals["cache_misses"] == totals["requests"]  # every answer says where from
    # Cursor polls key the cache by their cursor, so they share fewer answers than viewers of one whole state,
    # whose handler runs about once per TTL however many viewers ask (plus the first answer).
    assert poll["cache_hits"] > poll["cache_misses"] > 0
    assert state["cache_misses"] <= 5 and state["cache_hits"] >= 8 * state["cache_misses"]
    assert state["cache_age_s"] > 0  # whole-state answers were served a second old or more
    # The target agrees: its handler ran for the misses only (plus polls still in flight when Locust stopped).
    counters = _target_counters(base_url)
    assert poll["cache_misses"] <= counters[("rtcap_handler_runs_total", "poll")] <= poll["cache_misses"] + 4
    assert poll["cache_hits"] <= counters[("rtcap_cache_hits_total", "poll")] <= poll["cache_hits"] + 4
    # Staleness the cache adds: polling every 0.2 s alone would leave news about 0.1 s old; a 2 s cache of one
    # whole state serves it up to 2 s old. (A cursor poll's hit is only as old as the last poll at that cursor.)
    assert float(locust_stats(tmp_path / "state")[("state", "delivery")]["50%"]) >= 500
