"""The same operation over REST (`GET /latest`, ETag) and as request/response over `/ws/rpc`."""

from __future__ import annotations

import json
from typing import Any

from rtcap.targets.reference.hub import Hub
from rtcap.targets.reference.rpc import answer


def test_answers_match_request_ids_and_say_what_failed() -> None:
    hub = Hub()
    assert json.loads(answer(hub, {"id": 1, "op": "get"}, "c")) == {"type": "response", "id": 1, "status": 200,
                                                                    "result": None}
    event = hub.publish("c", {"payload": "p"})
    reply = json.loads(answer(hub, {"id": "x7", "op": "get"}, "c"))
    assert reply["id"] == "x7" and reply["result"] == {"seq": event.seq, "ts": event.ts, "channel": "c", "payload": "p"}
    assert json.loads(answer(hub, {"id": 2, "op": "echo", "data": {"k": [1]}}, "c"))["result"] == {"k": [1]}
    bad = json.loads(answer(hub, {"id": 3, "op": "delete"}, "c"))
    assert (bad["id"], bad["status"]) == (3, 400) and "delete" in bad["error"]
    assert json.loads(answer(hub, {"id": True, "op": "get"}, "c"))["type"] == "error"  # no usable id: no response


def test_rest_latest_has_an_etag_and_answers_304_when_unchanged(target: Any, channel: str) -> None:
    status, headers, body = target.request("GET", f"/latest?channel={channel}")
    assert (status, body, headers["etag"]) == (200, b"null", f'"{channel}:0"')
    pub = target.publish(channel, {"k": 1})
    status, headers, body = target.request("GET", f"/latest?channel={channel}")
    assert status == 200 and json.loads(body)["seq"] == pub["seq"]
    assert headers["cache-control"] == "no-cache"
    status, _, body = target.request("GET", f"/latest?channel={channel}", headers={"If-None-Match": headers["etag"]})
    assert (status, body) == (304, b"")


def test_ws_rpc_answers_each_request_by_id_on_one_connection(target: Any, channel: str) -> None:
    pub = target.publish(channel, {"k": 2})
    ws = target.ws(f"/ws/rpc?channel={channel}")
    try:
        for n in (5, 6):
            ws.send(json.dumps({"type": "request", "id": n, "op": "get"}))
        ws.send(json.dumps({"type": "nonsense"}))
        replies = [json.loads(ws.recv()) for _ in range(3)]
        assert [(r["id"], r["status"], r["result"]["seq"]) for r in replies[:2]] == [(5, 200, pub["seq"]),
                                                                                     (6, 200, pub["seq"])]
        assert replies[2]["type"] == "error"
        assert target.metric("rtcap_open_connections", transport="rpc") == 1
    finally:
        ws.close()
