"""WebSocket feed and chat on the running reference target."""

from __future__ import annotations

import json
import struct
from typing import Any

import websocket


def recv_json(ws: websocket.WebSocket) -> dict[str, Any]:
    return json.loads(ws.recv())


def close_code(ws: websocket.WebSocket) -> int:
    """Read frames until the server's close frame and return its status code."""
    while True:
        frame = ws.recv_frame()  # raw frames: recv_data() would try to answer the close
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", frame.data[:2])[0]


def test_ws_feed_pushes_each_event_as_text_frame(target: Any, channel: str) -> None:
    ws = target.ws(f"/ws?channel={channel}")
    try:
        # The subscription exists once the server answered a ping.
        ws.send(json.dumps({"type": "ping"}))
        pong = recv_json(ws)
        assert pong["type"] == "pong" and isinstance(pong["ts"], float)
        published = [target.publish(channel, {"i": i}) for i in range(3)]
        for i, pub in enumerate(published):
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_TEXT
            assert json.loads(data) == {"seq": pub["seq"], "ts": pub["ts"], "channel": channel, "i": i}
    finally:
        ws.close()


def test_ws_errors_keep_connection_open(target: Any, channel: str) -> None:
    ws = target.ws(f"/ws?channel={channel}")
    try:
        for bad in ("not json", "[1,2]", json.dumps({"type": "bogus"}), json.dumps({"type": "resume"})):
            ws.send(bad)
            reply = recv_json(ws)
            assert reply["type"] == "error" and reply["error"], bad
        ws.send(json.dumps({"type": "ping"}))
        assert recv_json(ws)["type"] == "pong"
    finally:
        ws.close()


def test_ws_resume_replays_without_duplicates(target: Any, channel: str) -> None:
    for _ in range(5):
        target.publish(channel)
    ws = target.ws(f"/ws?channel={channel}")
    try:
        ws.send(json.dumps({"type": "ping"}))
        assert recv_json(ws)["type"] == "pong"
        target.publish(channel)
        assert recv_json(ws)["seq"] == 6  # live only: nothing replayed without a resume

        # Resume after 2: replays 3..5 but not 6, which this connection already got.
        # The pong after it proves nothing else was queued in between.
        ws.send(json.dumps({"type": "resume", "since": 2}))
        ws.send(json.dumps({"type": "ping"}))
        got = [recv_json(ws) for _ in range(4)]
        assert [m.get("seq") for m in got[:3]] == [3, 4, 5] and got[3]["type"] == "pong"

        target.publish(channel)
        assert recv_json(ws)["seq"] == 7
        ws.send(json.dumps({"type": "resume", "since": 0}))
        ws.send(json.dumps({"type": "ping"}))
        got = [recv_json(ws) for _ in range(3)]
        assert [m.get("seq") for m in got[:2]] == [1, 2] and got[2]["type"] == "pong"
        target.publish(channel)
        assert recv_json(ws)["seq"] == 8
    finally:
        ws.close()


def test_ws_since_query_replays_before_live(target: Any, channel: str) -> None:
    for _ in range(4):
        target.publish(channel)
    ws = target.ws(f"/ws?channel={channel}&since=2")
    try:
        assert [recv_json(ws)["seq"] for _ in range(2)] == [3, 4]
        target.publish(channel)
        assert recv_json(ws)["seq"] == 5
    finally:
        ws.close()


def test_ws_disconnect_decrements_gauge(target: Any, channel: str) -> None:
    target.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="ws")
    ws = target.ws(f"/ws?channel={channel}")
    ws.send(json.dumps({"type": "ping"}))
    recv_json(ws)
    assert target.metric("rtcap_open_connections", transport="ws") == 1
    ws.sock.close()  # abrupt: no close handshake
    target.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="ws", timeout=3)


def test_chat_broadcasts_to_room_with_per_room_seq(target: Any, channel: str) -> None:
    room = channel
    a = target.ws(f"/ws/chat?room={room}")
    b = target.ws(f"/ws/chat?room={room}")
    try:
        wa, wb = recv_json(a), recv_json(b)
        assert wa["type"] == wb["type"] == "welcome"
        assert wa["room"] == wb["room"] == room and wa["id"] != wb["id"]

        a.send(json.dumps({"type": "chat", "text": "hi", "id": "m1", "from": "forged"}))
        for member in (a, b):
            msg = recv_json(member)
            assert msg["type"] == "chat" and msg["seq"] == 1 and msg["room"] == room
            assert (msg["from"], msg["text"], msg["id"]) == (wa["id"], "hi", "m1")
            assert isinstance(msg["ts"], float)
        b.send(json.dumps({"type": "chat", "text": "yo"}))
        assert [(m["seq"], m["from"]) for m in (recv_json(a), recv_json(b))] == [(2, wb["id"])] * 2
    finally:
        a.close()
        b.close()


def test_chat_rooms_are_isolated_and_default_to_lobby(target: Any, channel: str) -> None:
    a = target.ws(f"/ws/chat?room={channel}-a")
    b = target.ws("/ws/chat")
    try:
        recv_json(a)
        assert recv_json(b)["room"] == "lobby"
        a.send(json.dumps({"type": "chat", "text": "only a"}))
        assert recv_json(a)["text"] == "only a"
        b.send(json.dumps({"type": "ping"}))
        assert recv_json(b)["type"] == "pong"  # b got nothing from room a before its pong
    finally:
        a.close()
        b.close()


def test_chat_subscribe_receives_feed_events(target: Any, channel: str) -> None:
    ws = target.ws(f"/ws/chat?room={channel}")
    try:
        recv_json(ws)
        ws.send(json.dumps({"type": "subscribe", "channel": channel}))
        ack = recv_json(ws)
        assert ack == {"type": "subscribed", "channel": channel, "seq": 0}
        published = target.publish(channel, {"k": 1})
        assert recv_json(ws) == {"type": "event", "seq": 1, "ts": published["ts"], "channel": channel, "k": 1}
        ws.send(json.dumps({"type": "unsubscribe", "channel": channel}))
        assert recv_json(ws)["type"] == "unsubscribed"
        target.publish(channel)
        ws.send(json.dumps({"type": "ping"}))
        assert recv_json(ws)["type"] == "pong"
    finally:
        ws.close()


def test_chat_errors_keep_connection_open(target: Any, channel: str) -> None:
    ws = target.ws(f"/ws/chat?room={channel}")
    try:
        recv_json(ws)
        for bad in (
            "{oops",
            json.dumps({"type": "nope"}),
            json.dumps({"type": "chat"}),
            json.dumps({"type": "subscribe", "channel": "no spaces"}),
        ):
            ws.send(bad)
            reply = recv_json(ws)
            assert reply["type"] == "error" and reply["error"], bad
        ws.send(json.dumps({"type": "ping"}))
        assert recv_json(ws)["type"] == "pong"
    finally:
        ws.close()


def test_chat_oversize_message_closes_with_1009(target: Any, channel: str) -> None:
    ws = target.ws(f"/ws/chat?room={channel}")
    try:
        recv_json(ws)
        ws.send(json.dumps({"type": "chat", "text": "x" * 70_000}))
        assert close_code(ws) == 1009
    finally:
        ws.close()


def test_ws_notify_mode_sends_only_the_news_and_the_data_stays_behind_rest(target: Any, channel: str) -> None:
    ws = target.ws(f"/ws?channel={channel}&notify=1")
    try:
        ws.send(json.dumps({"type": "ping"}))
        assert recv_json(ws)["type"] == "pong"  # subscribed
        pub = target.publish(channel, {"payload": "x" * 500})
        notice = recv_json(ws)
        assert notice == {"type": "changed", "seq": pub["seq"], "ts": pub["ts"], "channel": channel}
        fetched = target.get_json(f"/poll?channel={channel}&since={pub['seq'] - 1}")["events"]
        assert [e["payload"] for e in fetched] == ["x" * 500]
    finally:
        ws.close()


def test_typing_and_presence_indicators_are_stamped_and_fanned_out_to_the_room(target: Any, channel: str) -> None:
    members = [target.ws(f"/ws/chat?room={channel}") for _ in range(3)]
    outsider = target.ws(f"/ws/chat?room={channel}-other")
    try:
        for ws in [*members, outsider]:
            assert recv_json(ws)["type"] == "welcome"
        members[0].send(json.dumps({"type": "typing", "active": True, "client": "a"}))
        members[1].send(json.dumps({"type": "presence", "status": "away", "seq": 999}))
        for ws in members:  # every member, the sender included, in the room's order
            typing, presence = recv_json(ws), recv_json(ws)
            assert (typing["type"], typing["client"], typing["active"]) == ("typing", "a", True)
            assert (presence["type"], presence["status"]) == ("presence", "away")
            assert presence["seq"] == typing["seq"] + 1  # the server's seq, not the client's 999
            assert isinstance(typing["ts"], float) and typing["room"] == channel
        outsider.send(json.dumps({"type": "ping"}))
        assert recv_json(outsider)["type"] == "pong"  # nothing from the other room came first
    finally:
        for ws in [*members, outsider]:
            ws.close()
