"""The polling client's fast path (loadtests/transports/http_client.py) against h11 reading the same answers.

A scripted server on 127.0.0.1 answers every request on a connection with the same bytes. Each case is read
twice, two requests on one keep-alive client: once with the fast path, once with every exchange forced through
h11 (the client as it was before the fast path). Answers, errors and their messages, the bytes the socket
counted, the connections opened and the request bytes the server received must be the same; and the fast path
must have read exactly the answers it is meant to read, handing everything else to h11.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import h11
import pytest

from rtcap.loadtests.transports import http_client
from rtcap.loadtests.transports.http_client import HTTPConnection
from rtcap.loadtests.transports.http_fast import request_head
from rtcap.loadtests.transports.limits import Limits

IO_TIMEOUT_S = 5.0


@dataclass
class ScriptedServer:
    """Answers each request (a head up to its blank line) with `answer`, closing after it if `close`; records
    the bytes of every request it read. One thread per connection, each bounded by IO_TIMEOUT_S per read."""

    answer: bytes = b""
    close: bool = False
    requests: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # the listener was closed: the test is over
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(IO_TIMEOUT_S)
        pending = b""
        with conn:
            try:
                while True:
                    while b"\r\n\r\n" not in pending:
                        data = conn.recv(4096)
                        if not data:
                            return
                        pending += data
                    request, _, pending = pending.partition(b"\r\n\r\n")
                    self.requests.append(request + b"\r\n\r\n")
                    conn.sendall(self.answer)
                    if self.close:
                        conn.shutdown(socket.SHUT_WR)
                        return
            except OSError:
                return

    def stop(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (closing alone does not, on Linux)
        self.listener.close()
        self.acceptor.join(IO_TIMEOUT_S)
        for thread in self.threads:
            thread.join(IO_TIMEOUT_S)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    serving = ScriptedServer()
    yield serving
    serving.stop()


def through_h11(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every exchange through h11, as the client read them before the fast path."""
    monkeypatch.setattr(http_client, "request_head", lambda target, lines: None)


def exchange_twice(port: int, headers: dict[str, str], limits: Limits = Limits()) -> dict:
    """Two GETs on one client: each one's answer or error, then the counts."""
    http = HTTPConnection(f"http://127.0.0.1:{port}", timeout=IO_TIMEOUT_S, limits=limits)
    outcomes = []
    for _ in range(2):
        try:
            response = http.get(f"http://127.0.0.1:{port}/poll?channel=live", headers)
            outcomes.append(("answer", response.status, response.headers, response.body))
        except Exception as error:  # noqa: BLE001  (the error itself is what is compared)
            outcomes.append(("error", type(error), str(error)))
    http.close()
    return {"outcomes": outcomes, "bytes": http.byte_counts, "connects": http.connects, "fast": http.fast_exchanges}


def compare(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str] | None = None,
            limits: Limits = Limits()) -> tuple[dict, dict]:
    """(fast, h11) results of the same two exchanges, and the same request bytes received from both."""
    server.requests.clear()
    fast = exchange_twice(server.port, headers or {}, limits)
    sent_fast = list(server.requests)
    server.requests.clear()
    with monkeypatch.context() as patch:
        through_h11(patch)
        slow = exchange_twice(server.port, headers or {}, limits)
    assert server.requests == sent_fast, "the fast path sent other bytes than h11"
    assert slow["fast"] == 0
    fast_count = fast.pop("fast")
    slow.pop("fast")
    assert fast == slow
    return fast, {"fast": fast_count}


HEAD = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/json\r\n"
BODY = b'{"seq": 7, "ts": 1764780000.5, "pad": "xxxxxxxx"}'

# (answer, the server closes after it, fast exchanges out of two)
CASES: dict[str, tuple[bytes, bool, int]] = {
    "content-length": (HEAD + b"Content-Length: %d\r\nETag: \"7\"\r\n\r\n%s" % (len(BODY), BODY), False, 2),
    "empty-body": (HEAD + b"Content-Length: 0\r\n\r\n", False, 2),
    "not-modified": (b"HTTP/1.1 304 Not Modified\r\nETag: \"7\"\r\n\r\n", False, 2),
    "not-modified-with-length": (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 40\r\n\r\n", False, 2),
    "no-content": (b"HTTP/1.1 204 No Content\r\n\r\n", False, 2),
    "no-reason": (b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok", False, 2),
    "error-status": (b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy", False, 2),
    "repeated-header-and-spaces": (HEAD + b"X-A: 1\r\nx-a:   2 \t\r\nContent-Length: 2\r\n\r\nok", False, 2),
    "connection-close": (HEAD + b"Connection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok", True, 2),
    # Handed to h11: it decides, reads or refuses them.
    "chunked": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", False, 0),
    "chunked-and-a-length": (HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 12\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                             False, 0),
    "close-delimited": (HEAD + b"\r\nuntil the end", True, 0),
    "informational-first": (b"HTTP/1.1 100 Continue\r\n\r\n" + HEAD + b"Content-Length: 2\r\n\r\nok", False, 0),
    "http-1.0": (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", True, 0),
    "bare-line-feeds": (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", False, 0),
    "folded-header": (HEAD + b"X-F: a\r\n b\r\nContent-Length: 2\r\n\r\nok", False, 0),
    "length-list": (HEAD + b"Content-Length: 2, 2\r\n\r\nok", False, 0),
    "conflicting-lengths": (HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nok", False, 0),
    "bad-length": (HEAD + b"Content-Length: two\r\n\r\nok", False, 0),
    "bad-header-line": (HEAD + b"Bad Header: x\r\nContent-Length: 2\r\n\r\nok", False, 0),
    "bad-status-line": (b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", False, 0),
    "short-body-then-close": (HEAD + b"Content-Length: 10\r\n\r\nabc", True, 0),
    "nothing-then-close": (b"", True, 0),
    "bytes-after-the-body": (HEAD + b"Content-Length: 2\r\n\r\nokJUNK", False, 0),
}


@pytest.mark.parametrize("read_size", [65536, 7], ids=["whole-reads", "7-byte-reads"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_fast_path_reads_what_h11_reads(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, case: str,
                                            read_size: int) -> None:
    server.answer, server.close, fast_expected = CASES[case]
    monkeypatch.setattr(http_client, "READ_SIZE", read_size)  # 7: every head and body split across reads
    fast, counts = compare(server, monkeypatch, {"If-None-Match": '"6"'})
    assert counts["fast"] == fast_expected, fast["outcomes"]
    if fast_expected:
        assert all(outcome[0] == "answer" for outcome in fast["outcomes"])


def test_a_plain_poll_answer_goes_the_fast_path_with_its_headers_and_body(server: ScriptedServer,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    server.answer = CASES["content-length"][0]
    fast, counts = compare(server, monkeypatch)
    assert counts["fast"] == 2 and fast["connects"] == 1
    kind, status, headers, body = fast["outcomes"][0]
    assert (kind, status, body) == ("answer", 200, BODY)
    assert headers == {"server": "nginx", "content-type": "application/json", "content-length": str(len(BODY)),
                       "etag": '"7"'}
    assert fast["bytes"][1] == 2 * len(server.answer)  # every byte of both answers, counted by the socket


@pytest.mark.parametrize("headers", [
    {},
    {"If-None-Match": 'W/"abc"', "If-Modified-Since": "Thu, 03 Dec 2026 17:02:09 GMT"},
    {"Authorization": "Bearer t0k3n", "X-Empty": "", "x-lower": "v"},
    {"Connection": "close"},  # the fast path honours it as h11 does: one connection per request
    {"Expect": "100-continue"},  # h11 builds and reads it
    {"Host": "elsewhere"},  # two Host headers: h11 refuses to send it
    {"X-Bad": "line\r\nbreak"},  # h11 refuses it
    {"X-Accent": "caf\u00e9"},  # not ASCII: h11's error
])
def test_requests_go_out_as_h11_writes_them(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch,
                                            headers: dict[str, str]) -> None:
    server.answer = CASES["content-length"][0]
    fast, _ = compare(server, monkeypatch, headers)
    if "Connection" in headers:
        assert fast["connects"] == 2


def test_request_head_is_byte_for_byte_h11s() -> None:
    lines = [("Host", "127.0.0.1:8080"), ("User-Agent", "rtcap"), ("If-None-Match", '"7"'), ("X-Trace", "a b")]
    connection = h11.Connection(h11.CLIENT)
    expected = connection.send(h11.Request(method="GET", target="/poll?channel=live&since=3", headers=lines))
    assert request_head("/poll?channel=live&since=3", lines) == (expected, False)
    # Host first, as h11 writes it, wherever the caller put it.
    moved = [lines[1], lines[0], *lines[2:]]
    assert request_head("/poll", moved)[0].startswith(b"GET /poll HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent")
    assert request_head("/poll", [*lines, ("Connection", "Keep-Alive, close")])[1] is True
    for refused in ([("User-Agent", "rtcap")], [*lines, ("Content-Length", "0")], [*lines, ("Upgrade", "ws")]):
        assert request_head("/poll", refused) is None
    assert request_head("/poll with space", lines) is None


def test_limits_hold_on_the_fast_path(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    limits = Limits(http_head_bytes=256, http_body_bytes=64)
    server.answer = HEAD + b"Content-Length: 65\r\n\r\n" + b"x" * 65
    fast, _ = compare(server, monkeypatch, limits=limits)
    assert fast["outcomes"][0][:2] == ("error", http_client.LimitExceeded)
    assert "(Content-Length: 65)" in fast["outcomes"][0][2]
    monkeypatch.setattr(http_client, "READ_SIZE", 100)  # the head arrives in pieces, never complete
    server.answer = HEAD + b"X-Long: " + b"y" * 400 + b"\r\nContent-Length: 2\r\n\r\nok"
    fast, _ = compare(server, monkeypatch, limits=limits)
    assert fast["outcomes"][0] == ("error", http_client.LimitExceeded, "HTTP response head longer than 256 bytes")
