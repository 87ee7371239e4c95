"""nginx + nchan (targets/examples/nchan): publish over HTTP, receive over SSE, WebSocket and polling."""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import websocket

from tests.targets.examples.conftest import IO_TIMEOUT_S, Example, wait_for

MESSAGE_ID = re.compile(r"^(\d+):(\d+)$")


def body(seq: int, pad: str = "abc") -> bytes:
    """One of our messages, exactly as published."""
    return json.dumps({"seq": seq, "ts": time.time(), "pad": pad}).encode()


def request(ex: Example, method: str, path: str, data: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(ex.host, ex.port, timeout=IO_TIMEOUT_S)
    try:
        conn.request(method, path, body=data, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def publish(ex: Example, channel: str, data: bytes) -> dict[str, Any]:
    """POST /pub; nchan answers with the channel's state, as JSON when asked."""
    status, _, reply = request(ex, "POST", f"/pub?channel={channel}", data,
                               {"Content-Type": "application/json", "Accept": "application/json"})
    assert status in (201, 202), (status, reply)  # 201: delivered to subscribers, 202: only queued
    info = json.loads(reply)
    assert MESSAGE_ID.match(info["last_message_id"]), info
    return info


def subscribers(ex: Example, channel: str) -> int:
    """How many subscribers nchan holds on the channel (GET on the publisher location)."""
    status, _, reply = request(ex, "GET", f"/pub?channel={channel}", headers={"Accept": "application/json"})
    return json.loads(reply)["subscribers"] if status == 200 else 0


class RawSSE:
    """An EventSource request on a raw socket: the bytes nchan sends, blocks split on blank lines."""

    def __init__(self, ex: Example, path: str, headers: dict[str, str] | None = None) -> None:
        self.sock = socket.create_connection((ex.host, ex.port), timeout=IO_TIMEOUT_S)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {ex.host}\r\nAccept: text/event-stream\r\n{extra}\r\n".encode()
        )
        self.buffer = b""
        head = self._read_until(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("SSE stream ended")
            self.buffer += chunk
        item, self.buffer = self.buffer.split(marker, 1)
        return item

    def block(self) -> str:
        """The next block, without its terminating blank line."""
        return self._read_until(b"\n\n").decode()

    def data_block(self) -> str:
        """The next block that carries data (skips comments such as nchan's ': hi')."""
        while True:
            block = self.block()
            if any(line.startswith("data:") for line in block.split("\n")):
                return block

    def close(self) -> None:
        self.sock.close()


def listens_on(process: psutil.Process, host: str, port: int) -> bool:
    return any(c.status == psutil.CONN_LISTEN and tuple(c.laddr) == (host, port)
               for c in process.net_connections(kind="tcp"))


def test_listening_line_names_the_nginx_master_and_its_one_worker_holds_the_socket(nchan: Example) -> None:
    master = psutil.Process(nchan.pid)
    assert master.name() == "nginx"
    title = " ".join(master.cmdline())  # nginx rewrites it: "nginx: master process /usr/sbin/nginx -c ..."
    assert title.startswith("nginx: master process ")
    assert f"-c {nchan.extra['prefix']}/nginx.conf" in title and "daemon off;" in title
    assert listens_on(master, "127.0.0.1", nchan.port)
    workers = master.children()
    assert [w.pid for w in workers] == [int(nchan.extra["worker"])]  # worker_processes 1
    assert " ".join(workers[0].cmdline()).strip() == "nginx: worker process"
    assert listens_on(workers[0], "127.0.0.1", nchan.port)
    assert all(c.laddr[0] == "127.0.0.1" for c in master.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN)
    assert request(nchan, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize("path", ["/sse", "/sub"])
def test_sse_subscriber_gets_the_exact_body_with_an_nchan_id_and_no_replay(
    nchan: Example, channel: str, path: str
) -> None:
    before = publish(nchan, channel, body(0))  # buffered before the subscriber comes: must not be replayed
    sse = RawSSE(nchan, f"{path}?channel={channel}")
    try:
        assert sse.status == 200
        assert sse.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert "transfer-encoding" not in sse.headers and "content-length" not in sse.headers
        assert sse.block() == ": hi"  # nchan's greeting: the subscriber is registered
        message = body(1)
        info = publish(nchan, channel, message)
        assert info["subscribers"] == 1
        assert info["last_message_id"] != before["last_message_id"]
        block = sse.data_block()
        assert block == f"id: {info['last_message_id']}\ndata: {message.decode()}"
        seconds, tag = MESSAGE_ID.match(info["last_message_id"]).groups()
        assert abs(int(seconds) - time.time()) < 60 and int(tag) >= 0
    finally:
        sse.close()


def test_sse_resumes_after_last_event_id_from_the_channel_buffer(nchan: Example, channel: str) -> None:
    first, second = body(1), body(2)
    first_id = publish(nchan, channel, first)["last_message_id"]
    second_id = publish(nchan, channel, second)["last_message_id"]
    sse = RawSSE(nchan, f"/sse?channel={channel}", {"Last-Event-ID": first_id})
    try:
        assert sse.status == 200
        assert sse.data_block() == f"id: {second_id}\ndata: {second.decode()}"
    finally:
        sse.close()


@pytest.mark.parametrize("path", ["/ws", "/sub"])
def test_websocket_subscriber_gets_the_raw_body_as_one_text_frame(nchan: Example, channel: str, path: str) -> None:
    ws = websocket.create_connection(f"{nchan.ws_url}{path}?channel={channel}", timeout=IO_TIMEOUT_S)
    try:
        wait_for(lambda: subscribers(nchan, channel) == 1, what="the WebSocket subscriber to be registered")
        message = body(7, pad="x" * 64)
        assert publish(nchan, channel, message)["subscribers"] == 1
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT
        assert data == message
    finally:
        ws.close()


def test_locations_refuse_other_transports_and_a_missing_channel(nchan: Example, channel: str) -> None:
    assert request(nchan, "GET", f"/sse?channel={channel}")[0] == 403  # no Accept: text/event-stream
    assert request(nchan, "GET", f"/ws?channel={channel}")[0] == 403  # no WebSocket upgrade
    for method, path in [("POST", "/pub"), ("GET", "/sub"), ("GET", "/lp"), ("GET", "/poll")]:
        status, _, reply = request(nchan, method, path, b"{}" if method == "POST" else None)
        assert (status, reply) == (400, b"missing ?channel=\n"), path


def cursor(headers: dict[str, str]) -> dict[str, str]:
    """The long-poll cursor nchan hands out, as the request headers that send it back."""
    return {"If-Modified-Since": headers["last-modified"], "If-None-Match": headers["etag"]}


def assert_cursor_is_message_id(headers: dict[str, str], message_id: str) -> None:
    seconds, tag = MESSAGE_ID.match(message_id).groups()
    assert email.utils.parsedate_to_datetime(headers["last-modified"]).timestamp() == int(seconds)
    assert headers["etag"] == tag


def test_long_poll_is_held_until_a_message_then_answered_with_it_and_a_cursor(nchan: Example, channel: str) -> None:
    answered = threading.Event()
    result: dict[str, Any] = {}

    def long_poll() -> None:
        try:
            result["response"] = request(nchan, "GET", f"/lp?channel={channel}")
        except Exception as error:  # reported by the assertions below
            result["error"] = error
        answered.set()

    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()
    wait_for(lambda: subscribers(nchan, channel) == 1, what="the long-poll request to be held")
    assert not answered.is_set(), result  # held: nothing published yet
    message = body(1)
    info = publish(nchan, channel, message)
    assert info["subscribers"] == 1
    assert answered.wait(IO_TIMEOUT_S), "the held long-poll was not answered"
    poller.join(IO_TIMEOUT_S)
    assert "error" not in result, result
    status, headers, data = result["response"]
    assert status == 200
    assert data == message
    assert headers["content-type"] == "application/json"  # the publisher's Content-Type, kept
    assert_cursor_is_message_id(headers, info["last_message_id"])

    # The cursor walks the channel buffer: messages published between two polls are not lost.
    second, third = body(2), body(3)
    second_id = publish(nchan, channel, second)["last_message_id"]
    third_id = publish(nchan, channel, third)["last_message_id"]
    status, headers, data = request(nchan, "GET", f"/lp?channel={channel}", headers=cursor(headers))
    assert (status, data) == (200, second)
    assert_cursor_is_message_id(headers, second_id)
    status, headers, data = request(nchan, "GET", f"/lp?channel={channel}", headers=cursor(headers))
    assert (status, data) == (200, third)
    assert_cursor_is_message_id(headers, third_id)


def test_interval_poll_answers_at_once_with_the_newest_message_or_304(nchan: Example, channel: str) -> None:
    older, newest = body(1), body(2)
    publish(nchan, channel, older)
    newest_id = publish(nchan, channel, newest)["last_message_id"]
    status, headers, data = request(nchan, "GET", f"/poll?channel={channel}")  # no cursor: current state
    assert (status, data) == (200, newest)
    assert_cursor_is_message_id(headers, newest_id)
    status, _, data = request(nchan, "GET", f"/poll?channel={channel}", headers=cursor(headers))
    assert (status, data) == (304, b"")  # nothing newer: answered at once, not held
    later = body(3)
    later_id = publish(nchan, channel, later)["last_message_id"]
    status, headers, data = request(nchan, "GET", f"/poll?channel={channel}", headers=cursor(headers))
    assert (status, data) == (200, later)
    assert_cursor_is_message_id(headers, later_id)


def test_sigterm_stops_nginx_and_removes_the_prefix_directory(start_example) -> None:
    ex = start_example("nchan", lines=2)
    master = psutil.Process(ex.pid)
    worker = psutil.Process(int(ex.extra["worker"]))
    prefix = Path(ex.extra["prefix"])
    assert (prefix / "nginx.conf").is_file() and (prefix / "nginx.pid").read_text().strip() == str(ex.pid)
    assert ex.stop() == 0
    for process in (master, worker):
        assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    assert not prefix.exists()
    with pytest.raises(OSError):
        socket.create_connection((ex.host, ex.port), timeout=1).close()


def test_a_killed_nginx_master_takes_its_worker_with_it(start_example) -> None:
    """kill -9 of the master orphans its worker (nginx's workers do not notice); the launcher then exits and
    kills what the server left in its session, so no worker keeps the port."""
    ex = start_example("nchan", lines=2)
    worker = psutil.Process(int(ex.extra["worker"]))
    os.kill(ex.pid, signal.SIGKILL)
    ex.proc.wait(timeout=20)
    gone, alive = psutil.wait_procs([worker], timeout=10)
    assert not alive, f"nginx worker {worker.pid} left behind"
