"""Conditional GETs on the reference target: Last-Modified / If-Modified-Since on /poll, and conditional /state."""

from __future__ import annotations

import json
import math
from email.utils import formatdate
from typing import Any

from rtcap.targets.reference.conditional import Answer, last_modified, not_modified

PAST = formatdate(0, usegmt=True)
FUTURE = formatdate(4_102_444_800, usegmt=True)  # 2100


def test_last_modified_is_the_second_before_while_the_newest_events_second_runs() -> None:
    assert last_modified(100.3, now=101.2) == formatdate(100, usegmt=True)
    # More events may still come in second 100: a client holding "100" must not be told 304 for them.
    assert last_modified(100.3, now=100.9) == formatdate(99, usegmt=True)
    assert last_modified(None) is None


def test_if_none_match_decides_before_if_modified_since() -> None:
    answer = Answer(b"{}", '"c:3"', 100.3, last_modified(100.3, now=200), 0)
    assert not_modified({"if-modified-since": formatdate(100, usegmt=True)}, answer)
    assert not not_modified({"if-modified-since": formatdate(99, usegmt=True)}, answer)
    assert not not_modified({"if-modified-since": "not a date"}, answer)
    assert not not_modified({"if-none-match": '"c:2"', "if-modified-since": FUTURE}, answer)
    assert not_modified({"if-none-match": 'W/"c:3"', "if-modified-since": PAST}, answer)


def test_poll_answers_304_to_if_modified_since_alone(target: Any, channel: str) -> None:
    published = target.publish(channel)
    status, headers, _ = target.request("GET", f"/poll?channel={channel}&since=0")
    second = math.floor(published["ts"])  # or the second before, if the answer left in the same second
    assert status == 200 and headers["last-modified"] in (formatdate(second, usegmt=True), formatdate(second - 1, usegmt=True))
    unchanged = target.request("GET", f"/poll?channel={channel}&since=1", headers={"If-Modified-Since": FUTURE})
    assert unchanged[0] == 304 and unchanged[2] == b"" and unchanged[1]["etag"] == f'"{channel}:1"'
    changed = target.request("GET", f"/poll?channel={channel}&since=0", headers={"If-Modified-Since": PAST})
    assert changed[0] == 200 and [e["seq"] for e in json.loads(changed[2])["events"]] == [1]


def test_state_is_conditional_only_when_asked(target: Any, channel: str) -> None:
    target.publish(channel)
    etag = {"If-None-Match": f'"{channel}:1"'}
    status, headers, body = target.request("GET", f"/state?channel={channel}&conditional=1", headers=etag)
    assert (status, body, headers["etag"]) == (304, b"", f'"{channel}:1"') and "last-modified" in headers
    assert target.request("GET", f"/state?channel={channel}&conditional=1", headers={"If-Modified-Since": FUTURE})[0] == 304
    assert target.request("GET", f"/state?channel={channel}", headers=etag)[0] == 200  # the default: always whole
    target.publish(channel)
    status, headers, body = target.request("GET", f"/state?channel={channel}&conditional=1", headers=etag)
    assert status == 200 and headers["etag"] == f'"{channel}:2"' and len(json.loads(body)["events"]) == 2


def test_state_validators_make_every_state_request_conditional(start_target: Any) -> None:
    target = start_target("--rate", "0", "--state-validators")
    target.publish("live")
    status, headers, _ = target.request("GET", "/state?channel=live")
    assert status == 200 and headers["etag"] == '"live:1"' and "last-modified" in headers
    assert target.request("GET", "/state?channel=live", headers={"If-None-Match": headers["etag"]})[0] == 304
