"""Limits and safety of the reference target: the publish token, the browser Origin check, channel and room limits."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import websocket

from rtcap.targets.reference.__main__ import build_arg_parser, config_from_args, main
from rtcap.targets.reference.access import OriginPolicy, is_loopback, normalise_origin
from rtcap.targets.reference.config import TargetConfig
from tests.targets.conftest import ROOT, Target

TOKEN = "s3cret-token"
EVIL = "http://evil.example"


def close_frame(ws: websocket.WebSocket) -> tuple[int, str]:
    """Read frames until the server's close frame: (code, reason)."""
    while True:
        frame = ws.recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", frame.data[:2])[0], frame.data[2:].decode()


def handshake_status(target: Target, path: str, **options: Any) -> int:
    """101 if the WebSocket opens, else the HTTP status the handshake was refused with."""
    try:
        ws = websocket.create_connection(target.ws_url + path, timeout=5, **options)
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code
    ws.close()
    return 101


def publish(target: Target, channel: str, headers: dict[str, str] | None = None, query: str = "") -> int:
    status, _, _ = target.request("POST", f"/publish?channel={channel}{query}", body=b'{"x": 1}',
                                  headers=headers)
    return status


# --- binding beyond loopback -------------------------------------------------------------------------------


def test_off_loopback_without_a_token_refuses_to_start_in_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k != "RTCAP_PUBLISH_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "rtcap.targets.reference", "--host", "0.0.0.0", "--port", "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "0.0.0.0 is not loopback" in lines[0] and "--publish-token" in lines[0]


def test_off_loopback_with_the_token_from_the_environment_warns_and_guards_publishing(
        start_target: Callable[..., Target], monkeypatch: pytest.MonkeyPatch, channel: str) -> None:
    monkeypatch.setenv("RTCAP_PUBLISH_TOKEN", TOKEN)
    t = start_target("--host", "0.0.0.0", "--rate", "0")
    assert "warning: listening on 0.0.0.0" in t.stderr() and "publishing needs the token" in t.stderr()
    assert TOKEN not in t.stderr()
    status, headers, body = t.request("POST", f"/publish?channel={channel}", body=b"{}")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer") and b"Bearer" in body
    assert publish(t, channel, {"Authorization": "Bearer wrong"}) == 401
    assert publish(t, channel, query="&token=wrong") == 401
    assert publish(t, channel, {"Authorization": f"Bearer {TOKEN}"}) == 200
    assert publish(t, channel, query=f"&token={TOKEN}") == 200
    assert t.get_json(f"/poll?channel={channel}")["seq"] == 2  # reading needs no token; refused posts left no event


def test_loopback_stays_open_without_a_token_and_quiet(target: Target, channel: str) -> None:
    assert publish(target, channel) == 200
    assert "warning" not in target.stderr()


def test_a_token_given_on_loopback_is_required_too(start_target: Callable[..., Target], channel: str) -> None:
    t = start_target("--publish-token", TOKEN, "--rate", "0")
    assert publish(t, channel) == 401
    assert publish(t, channel, {"authorization": f"bearer {TOKEN}"}) == 200
    assert t.get_json(f"/poll?channel={channel}")["seq"] == 1


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.10", False), ("example.com", False),
])
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_token_is_not_shown_in_the_config_repr() -> None:
    config = config_from_args(build_arg_parser().parse_args(["--publish-token", TOKEN]))
    assert config.publish_token == TOKEN and TOKEN not in repr(config)
    assert TargetConfig(publish_token="").publish_token is None  # an empty variable is no token


# --- cross-origin requests from browser pages --------------------------------------------------------------


def test_a_cross_origin_simple_post_is_refused_and_publishes_nothing(target: Target, channel: str) -> None:
    own = f"http://{target.host}:{target.port}"
    status, _, body = target.request("POST", f"/publish?channel={channel}", body=b'{"x": 1}',
                                     headers={"Origin": EVIL, "Content-Type": "text/plain"})
    assert status == 403 and b"cross-origin" in json.loads(body)["error"].encode()
    assert publish(target, channel, {"Origin": "null"}) == 403  # sandboxed frames and file: pages
    assert target.get_json(f"/poll?channel={channel}")["seq"] == 0
    assert publish(target, channel, {"Origin": own, "Content-Type": "text/plain"}) == 200
    assert publish(target, channel) == 200  # no Origin: not a browser page
    assert target.get_json(f"/poll?channel={channel}")["seq"] == 2


def test_a_rebound_name_is_not_the_loopback_servers_own_origin(target: Target, channel: str) -> None:
    rebound = f"rebind.example:{target.port}"
    assert publish(target, channel, {"Host": rebound, "Origin": f"http://{rebound}"}) == 403
    local = f"localhost:{target.port}"
    assert publish(target, channel, {"Host": local, "Origin": f"http://{local}"}) == 200


@pytest.mark.parametrize("path", ["/ws", "/ws/chat", "/ws/rpc"])
def test_websockets_refuse_pages_on_other_origins(target: Target, path: str) -> None:
    assert handshake_status(target, path, origin=EVIL) == 403
    assert handshake_status(target, path, origin=f"http://{target.host}:{target.port}") == 101
    assert handshake_status(target, path, suppress_origin=True) == 101


def test_allowed_origins_may_publish_and_open_websockets(start_target: Callable[..., Target],
                                                         channel: str) -> None:
    t = start_target("--allow-origin", "HTTPS://Dashboard.example:443/", "--rate", "0")
    assert publish(t, channel, {"Origin": "https://dashboard.example"}) == 200
    assert handshake_status(t, f"/ws?channel={channel}", origin="https://dashboard.example") == 101
    assert publish(t, channel, {"Origin": "http://dashboard.example"}) == 403  # another scheme, another origin
    assert handshake_status(t, "/ws/chat", origin=EVIL) == 403


def test_origins_are_normalised_and_checked() -> None:
    assert normalise_origin("HTTP://Example.COM:80") == "http://example.com"
    assert normalise_origin("https://example.com:8443/") == "https://example.com:8443"
    for bad in ("example.com", "ftp://example.com", "https://example.com/path", "https://u@example.com", "null"):
        with pytest.raises(ValueError):
            normalise_origin(bad)
    policy = OriginPolicy(loopback=False)
    assert policy.permits("http://feed.example:8000", "feed.example:8000")
    assert policy.permits("http://feed.example", "feed.example")
    assert not policy.permits("http://feed.example:8000", "feed.example:9000")
    assert not policy.permits("http://other.example:8000", "feed.example:8000")


def test_a_bad_allowed_origin_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--allow-origin", "dashboard.example"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--allow-origin: 'dashboard.example' is not an origin" in err


# --- channel and room limits -------------------------------------------------------------------------------


def test_new_channels_beyond_the_limit_are_refused_everywhere(start_target: Callable[..., Target]) -> None:
    t = start_target("--max-channels", "3", "--rate", "0")  # "live" is one of the three
    assert publish(t, "a") == 200 and publish(t, "b") == 200
    reason = "too many channels: the limit is 3 (--max-channels)"
    status, _, body = t.request("POST", "/publish?channel=c", body=b"{}")
    assert status == 429 and json.loads(body)["error"] == reason
    for path in ("/poll?channel=c", "/poll?wait=1&channel=c", "/state?channel=c", "/latest?channel=c",
                 "/sse?channel=c"):
        status, _, body = t.request("GET", path)
        assert (status, json.loads(body)["error"]) == (429, reason), path
    feed = t.ws("/ws?channel=c")
    try:
        assert close_frame(feed) == (1008, reason)
    finally:
        feed.close()
    chat = t.ws("/ws/chat?room=r")
    rpc = t.ws("/ws/rpc")
    try:
        assert json.loads(chat.recv())["type"] == "welcome"
        chat.send(json.dumps({"type": "subscribe", "channel": "c"}))
        assert json.loads(chat.recv()) == {"type": "error", "error": reason}
        chat.send(json.dumps({"type": "subscribe", "channel": "a"}))  # the connection stays usable
        assert json.loads(chat.recv())["type"] == "subscribed"
        rpc.send(json.dumps({"type": "request", "id": 1, "op": "get", "channel": "c"}))
        assert json.loads(rpc.recv())["status"] == 429
    finally:
        chat.close()
        rpc.close()
    assert publish(t, "a") == 200 and t.get_json("/poll?channel=b")["seq"] == 1  # known channels still work
    assert t.metric("rtcap_channels_held", kind="channel") == 3
    assert t.metric("rtcap_limit_refused_total", kind="channel") == 9


def test_new_rooms_beyond_the_limit_are_refused_until_one_empties(start_target: Callable[..., Target]) -> None:
    t = start_target("--max-rooms", "2", "--rate", "0")
    first, second = t.ws("/ws/chat?room=one"), t.ws("/ws/chat?room=two")
    try:
        for ws in (first, second):
            assert json.loads(ws.recv())["type"] == "welcome"
        third = t.ws("/ws/chat?room=three")
        try:
            assert close_frame(third) == (1008, "too many rooms: the limit is 2 (--max-rooms)")
        finally:
            third.close()
        joined = t.ws("/ws/chat?room=one")  # an existing room is no new room
        assert json.loads(joined.recv())["type"] == "welcome"
        joined.close()
    finally:
        first.close()
    t.wait_metric("rtcap_channels_held", lambda v: v == 1, kind="room")  # "one" emptied and was freed
    again = t.ws("/ws/chat?room=three")
    try:
        welcome = json.loads(again.recv())
        assert (welcome["type"], welcome["room"]) == ("welcome", "three")
    finally:
        again.close()
        second.close()


def test_limits_are_options_with_stated_defaults() -> None:
    helps = {action.dest: action.help or "" for action in build_arg_parser()._actions}
    assert helps["max_channels"].endswith("(default 1000)") and helps["max_rooms"].endswith("(default 10000)")
    config = config_from_args(build_arg_parser().parse_args(["--max-channels", "7", "--max-rooms", "5"]))
    assert (config.max_channels, config.max_rooms) == (7, 5)
    with pytest.raises(ValueError, match="max_channels"):
        TargetConfig(channels=("a", "b"), max_channels=1)
