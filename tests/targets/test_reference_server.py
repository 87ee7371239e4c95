"""Process-level behaviour: listening line, limits, slow consumers, signals, command line."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import websocket

from rtcap.targets.reference import TargetConfig, create_app
from rtcap.targets.reference.__main__ import build_arg_parser, config_from_args, main
from rtcap.targets.reference.server import listening_line


def ws_close_code(ws: websocket.WebSocket) -> int:
    """Read raw frames until the server's close frame and return its status code."""
    while True:
        frame = ws.recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", frame.data[:2])[0]


def test_listening_line_reports_real_port_and_pid(target: Any) -> None:
    assert re.fullmatch(r"rtcap reference target listening on http://127\.0\.0\.1:\d+ \(pid \d+\)", target.line)
    assert target.port != 0 and target.pid == target.proc.pid
    assert target.line == listening_line("127.0.0.1", target.port, target.pid)
    assert listening_line("::1", 80, 7) == "rtcap reference target listening on http://[::1]:80 (pid 7)"


def test_max_connections_rejects_extra_streams(start_target: Callable[..., Any]) -> None:
    t = start_target("--max-connections", "2", "--rate", "0")
    sse = t.sse("/sse")
    feed = t.ws("/ws")
    try:
        assert sse.status == 200
        feed.send(json.dumps({"type": "ping"}))
        assert json.loads(feed.recv())["type"] == "pong"

        status, headers, body = t.request("GET", "/sse")
        assert status == 503 and "retry-after" in headers and json.loads(body)["error"]
        for path in ("/ws", "/ws/chat"):
            extra = t.ws(path)
            try:
                assert ws_close_code(extra) == 1013
            finally:
                extra.close()
        for transport in ("sse", "ws", "chat"):
            assert t.metric("rtcap_connections_rejected_total", transport=transport) == 1
        assert t.get_json("/poll")["seq"] == 0  # plain requests are not limited
    finally:
        sse.close()
        feed.close()
    # Slots free up again once clients leave.
    t.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="sse")
    t.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="ws")
    again = t.sse("/sse")
    assert again.status == 200
    again.close()


def test_slow_sse_consumer_is_dropped(start_target: Callable[..., Any]) -> None:
    t = start_target("--queue-size", "4", "--rate", "0")
    # A client that never reads, with a tiny receive window, so the server's writes stall.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect((t.host, t.port))
    try:
        sock.sendall(b"GET /sse?channel=slow HTTP/1.1\r\nHost: test\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
        body = json.dumps({"blob": "x" * 60_000}).encode()
        conn = http.client.HTTPConnection(t.host, t.port, timeout=5)
        for i in range(1, 401):
            conn.request("POST", "/publish?channel=slow", body=body)
            assert conn.getresponse().read()
            if i % 10 == 0 and t.metric("rtcap_slow_consumers_dropped_total", transport="sse"):
                break
        conn.close()
        assert t.metric("rtcap_slow_consumers_dropped_total", transport="sse") == 1
        t.wait_metric("rtcap_open_connections", lambda v: v == 0, transport="sse")
        assert t.get_json("/healthz")["status"] == "ok"  # the server itself is unaffected
    finally:
        sock.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_zero_promptly_with_clients_connected(start_target: Callable[..., Any], sig: int) -> None:
    t = start_target("--rate", "50")
    sse = t.sse("/sse")
    feed = t.ws("/ws")
    chat = t.ws("/ws/chat")
    held: dict[str, Any] = {}

    def long_poll() -> None:
        try:
            held["status"] = t.request("GET", "/poll?since=1000000&wait=30", timeout=15)[0]
        except OSError as exc:
            held["status"] = exc

    poller = threading.Thread(target=long_poll, daemon=True)
    try:
        sse.next_event()
        feed.recv()
        chat.recv()
        poller.start()
        t.wait_metric("rtcap_open_connections", lambda v: v == 1, transport="longpoll")
        start = time.monotonic()
        assert t.stop(sig, timeout=10) == 0
        assert time.monotonic() - start < 5
        poller.join(5)
        assert not poller.is_alive()
        assert "Traceback" not in t.stderr()
    finally:
        sse.close()
        feed.close()
        chat.close()


def test_arg_parser_defaults_match_config() -> None:
    assert config_from_args(build_arg_parser().parse_args([])) == TargetConfig()
    args = build_arg_parser().parse_args(
        [
            "--port",
            "0",
            "--rate",
            "2.5",
            "--payload",
            "0",
            "--channel",
            "a",
            "--channel",
            "b",
            "--max-connections",
            "5",
            "--max-message-bytes",
            "100",
            "--idle-timeout",
            "3",
            "--log-level",
            "info",
        ]
    )
    config = config_from_args(args)
    assert (config.port, config.rate, config.payload, config.channels) == (0, 2.5, 0, ("a", "b"))
    assert (config.max_connections, config.max_message_bytes, config.idle_timeout) == (5, 100, 3.0)
    assert config.log_level == "info"
    for action in build_arg_parser()._actions:
        assert action.help, action.dest


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "-1"], "--rate: must be >= 0"),
        (["--payload", "-5"], "--payload: must be >= 0"),
        (["--port", "70000"], "--port: must be <= 65535"),
        (["--port", "-1"], "--port: must be >= 0"),
        (["--port", "http"], "--port: expected an integer"),
        (["--rate", "nan"], "--rate: must be >= 0"),
        (["--idle-timeout", "0"], "--idle-timeout: must be > 0"),
        (["--channel", "has space"], "not a valid channel name"),
        (["--log-level", "loud"], "--log-level: invalid choice"),
    ],
)
def test_invalid_arguments_are_argparse_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_port_in_use_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert main(["--port", str(busy.getsockname()[1])]) == 1
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err


def test_apps_in_one_process_have_private_registries() -> None:
    first, second = create_app(TargetConfig()), create_app(TargetConfig(channels=("x",)))
    assert first.state.metrics.registry is not second.state.metrics.registry
    first.state.hub.publish("live", {})
    assert first.state.metrics.registry.get_sample_value("rtcap_events_published_total", {"channel": "live"}) == 1
    assert second.state.metrics.registry.get_sample_value("rtcap_events_published_total", {"channel": "live"}) is None
    assert b"process_resident_memory_bytes" in second.state.metrics.render()
