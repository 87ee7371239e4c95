"""The reference target's answer cache (--cache-ttl): reuse per key, X-Cache and Age, /metrics, bad TTLs."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from rtcap.targets.reference.conditional import Answer
from rtcap.targets.reference.config import TargetConfig
from rtcap.targets.reference.httpcache import AnswerCache


def _answer(n: int) -> Answer:
    return Answer(b"%d" % n, f'"c:{n}"', None, None, 0)


def test_answers_are_reused_for_ttl_seconds_per_key_with_their_age() -> None:
    now = [100.0]
    cache = AnswerCache(5.0, clock=lambda: now[0], max_entries=2)
    built = iter(range(1, 100))
    fetch = lambda key: cache.fetch(key, lambda: _answer(next(built)))  # noqa: E731
    assert (fetch("a").answer.body, fetch("a").hit) == (b"1", True)
    now[0] = 104.9
    again = fetch("a")
    assert (again.answer.body, again.hit, again.age, again.headers) == (b"1", True, 4, {"X-Cache": "HIT", "Age": "4"})
    assert fetch("b").answer.body == b"2"  # another key, another answer
    now[0] = 105.0
    renewed = fetch("a")
    assert (renewed.answer.body, renewed.hit, renewed.headers["X-Cache"]) == (b"3", False, "MISS")
    fetch("c")
    assert len(cache) == 2  # "b" expired first (also the oldest): pruned from the front


def test_a_cached_poll_is_served_stale_with_hit_and_age_and_counted(start_target: Any) -> None:
    target = start_target("--rate", "0", "--cache-ttl", "60")
    target.publish("live")
    status, headers, body = target.request("GET", "/poll?channel=live&since=0")
    assert status == 200 and (headers["x-cache"], headers["age"]) == ("MISS", "0")
    target.publish("live")
    status, headers, cached = target.request("GET", "/poll?channel=live&since=0")
    assert (status, headers["x-cache"], cached) == (200, "HIT", body)  # stale: the second event is not in it
    unchanged = target.request("GET", "/poll?channel=live&since=0", headers={"If-None-Match": '"live:1"'})
    assert (unchanged[0], unchanged[1]["x-cache"]) == (304, "HIT")  # the cache answers the validators itself
    fresh = target.request("GET", "/poll?channel=live&since=1")  # another key: the handler runs
    assert fresh[1]["x-cache"] == "MISS" and [e["seq"] for e in json.loads(fresh[2])["events"]] == [2]
    held = target.request("GET", "/poll?channel=live&since=0&wait=5")  # long polls are never cached
    assert "x-cache" not in held[1] and len(json.loads(held[2])["events"]) == 2
    state = [target.request("GET", "/state?channel=live")[1]["x-cache"] for _ in range(2)]
    assert state == ["MISS", "HIT"]
    assert target.metric("rtcap_handler_runs_total", endpoint="poll") == 2
    assert target.metric("rtcap_cache_hits_total", endpoint="poll") == 2
    assert target.metric("rtcap_handler_runs_total", endpoint="longpoll") == 1
    assert target.metric("rtcap_cache_hits_total", endpoint="state") == 1
    assert target.metric("rtcap_not_modified_total", endpoint="poll") == 1


def test_without_a_ttl_every_poll_runs_the_handler(target: Any, channel: str) -> None:
    before = target.metric("rtcap_handler_runs_total", endpoint="poll")
    headers = [target.request("GET", f"/poll?channel={channel}")[1] for _ in range(2)]
    assert all("x-cache" not in h and "age" not in h for h in headers)
    assert target.metric("rtcap_handler_runs_total", endpoint="poll") >= before + 2
    assert target.metric("rtcap_cache_hits_total", endpoint="poll") == 0


@pytest.mark.parametrize(("value", "message"), [("-1", "must be >= 0"), ("soon", "expected a number"),
                                                ("7200", "must be <= 3600")])
def test_a_bad_cache_ttl_is_refused_with_its_reason(value: str, message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "rtcap.targets.reference", "--cache-ttl", value], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and f"--cache-ttl: {message}" in done.stderr
    with pytest.raises(ValueError, match="cache_ttl must be 0..3600"):
        TargetConfig(cache_ttl=float("nan"))
