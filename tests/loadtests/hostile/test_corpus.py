"""Every rtcap client against every misbehaviour of the hostile server (tests/loadtests/hostile/server.py).

Per case: the client ends with the named error the case calls for (or, for a case the specification
tolerates, with what it must have received), its memory stays bounded (tracemalloc's peak while it ran),
it finishes before the test's own deadline, and it connects nowhere it was redirected to. Size limits are
the defaults; time limits are cut to one second so that the corpus runs in seconds.
"""

from __future__ import annotations

import re
import socket
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import h11
import pytest
import websocket

from rtcap.loadtests.transports.http_client import HTTPConnection
from rtcap.loadtests.transports.limits import DEFAULT_LIMITS, MIB, LimitExceeded, RedirectRefused, TimeLimitExceeded
from rtcap.loadtests.transports.sse_client import SSEClient, SSEConnectError, StreamClosed
from rtcap.loadtests.transports.sse_parser import SSEEvent
from rtcap.loadtests.transports.ws_client import WebSocketClient, WebSocketClosed
from tests.loadtests.hostile.server import CASES

LIMITS = replace(DEFAULT_LIMITS, head_timeout=1.0, body_timeout=1.0)
SILENCE_S = 1.0
"""The stream clients' read timeout: the longest they wait for a complete SSE item or WebSocket frame."""
HTTP_READ_S = 5.0
"""The HTTP client's timeout per socket read: longer than its deadlines, so that only a deadline can fire."""
CASE_DEADLINE_S = 10.0
"""A client still running this long after its case began has hung: the test fails (and unblocks it)."""
MEMORY_BOUND = {"http": 2 * DEFAULT_LIMITS.http_body_bytes + 2 * MIB,
                "sse": 2 * DEFAULT_LIMITS.sse_event_bytes + 2 * MIB,
                "ws": 2 * DEFAULT_LIMITS.ws_message_bytes + 2 * MIB}
"""Peak bytes a client may allocate in one case: about twice its largest limit (a buffer and one copy)."""
RECEIVE_AT_MOST = 1000
"""Items (responses, SSE items, WebSocket messages) a driver takes before it stops: every loop is bounded."""


@dataclass(frozen=True)
class Expect:
    """What a case must end with."""

    client: str  # "http", "sse" or "ws"
    errors: tuple[type[BaseException], ...]
    match: str = ""  # a regular expression the error's message must contain
    received: Callable[[list[Any]], bool] = lambda items: True  # what must have come before the error


def one_event_containing(text: str) -> Callable[[list[Any]], bool]:
    """The SSE items were exactly one event whose data contains `text`."""
    return lambda items: [type(i) for i in items] == [SSEEvent] and text in items[0].data


PROTOCOL = (h11.RemoteProtocolError,)
RESET = (ConnectionResetError, websocket.WebSocketConnectionClosedException)
REDIRECT = r"redirected to \S*(127\.0\.0\.2:\d+|/http-redirect-loop)\S*; redirects are not followed"
EXPECT: dict[str, Expect] = {
    "http-garbage": Expect("http", PROTOCOL),
    "http-09": Expect("http", PROTOCOL),
    "http-huge-head": Expect("http", (LimitExceeded,), "HTTP response head longer than 64 KiB"),
    "http-endless-header-line": Expect("http", (LimitExceeded,), "HTTP response head longer than 64 KiB"),
    "http-slow-head": Expect("http", (TimeLimitExceeded,), "no response head from .* within 1 s"),
    "http-silent-after-head": Expect("http", (TimeLimitExceeded,), "response body from .* not complete within 1 s"),
    "http-slow-body": Expect("http", (TimeLimitExceeded,), "response body from .* not complete within 1 s"),
    "http-gigabyte-content-length": Expect("http", (LimitExceeded,),
                                           r"response body larger than 8 MiB .*\(Content-Length: 1073741824\)"),
    "http-endless-chunked": Expect("http", (LimitExceeded,), "response body larger than 8 MiB"),
    "http-endless-close-delimited": Expect("http", (LimitExceeded,), "response body larger than 8 MiB"),
    "http-lying-content-length": Expect("http", PROTOCOL, "without sending complete message body"),
    "http-extra-body": Expect("http", PROTOCOL, "status line", lambda responses: len(responses) == 1),
    "http-bad-chunk-size": Expect("http", PROTOCOL),
    "http-huge-chunk-header": Expect("http", (LimitExceeded,), "HTTP chunk header longer than 64 KiB"),
    "http-redirect-away": Expect("http", (RedirectRefused,), "HTTP 302 .*" + REDIRECT),
    "http-redirect-loop": Expect("http", (RedirectRefused,), "HTTP 301 .*" + REDIRECT),
    "http-reset-mid-body": Expect("http", (ConnectionResetError, *PROTOCOL)),
    "http-101-no-upgrade": Expect("http", PROTOCOL),
    "http-close-at-once": Expect("http", PROTOCOL),
    "http-informational-flood": Expect("http", (TimeLimitExceeded,), "no response head"),
    "sse-huge-event": Expect("sse", (LimitExceeded,), "SSE line longer than 1 MiB"),
    "sse-huge-multiline-event": Expect("sse", (LimitExceeded,), "SSE event larger than 1 MiB"),
    "sse-endless-line": Expect("sse", (LimitExceeded,), "SSE line longer than 1 MiB"),
    "sse-trickle": Expect("sse", (TimeLimitExceeded,), "no SSE event, comment or retry from .* in 1 s"),
    # The specification decodes with replacement characters: an event, not an error.
    "sse-invalid-utf8": Expect("sse", (StreamClosed,), received=one_event_containing("\ufffd")),
    "sse-not-event-stream": Expect("sse", (SSEConnectError,), "HTTP 200 \\(text/html\\)"),
    "sse-redirect-away": Expect("sse", (RedirectRefused,), "HTTP 307 .*" + REDIRECT),
    "sse-bad-chunk": Expect("sse", PROTOCOL, received=one_event_containing("{}")),
    "sse-slow-head": Expect("sse", (TimeLimitExceeded,), "no response head from .* within 1 s"),
    "sse-reset-mid-event": Expect("sse", (ConnectionResetError,)),
    "ws-huge-frame": Expect("ws", (LimitExceeded,), "WebSocket message larger than 1 MiB"),
    "ws-huge-fragmented": Expect("ws", (LimitExceeded,), "WebSocket message larger than 1 MiB"),
    "ws-tiny-fragments": Expect("ws", (WebSocketClosed,), received=lambda messages: [len(m[0]) for m in messages]
                                == [1024 * 1024 - 1024]),
    "ws-huge-ping": Expect("ws", (LimitExceeded,), "WebSocket message larger than 1 MiB"),
    "ws-binary-invalid-utf8": Expect("ws", (UnicodeDecodeError,)),
    "ws-text-invalid-utf8": Expect("ws", (websocket.WebSocketPayloadException,)),
    "ws-close-storm": Expect("ws", (WebSocketClosed,)),
    "ws-reset-mid-frame": Expect("ws", RESET),
    "ws-101-no-upgrade": Expect("ws", (websocket.WebSocketException,), "Invalid WebSocket Header"),
    "ws-redirect-away": Expect("ws", (RedirectRefused,), "HTTP 302 .*" + REDIRECT),
    "ws-slow-handshake": Expect("ws", (TimeLimitExceeded,), "no WebSocket handshake answer from .* within 1 s"),
    "ws-huge-handshake": Expect("ws", (LimitExceeded,), "WebSocket handshake answer from .* longer than 64 KiB"),
    "ws-trickle-frame": Expect("ws", (TimeLimitExceeded,), "no complete WebSocket frame from .* in 1 s"),
    "ws-garbage": Expect("ws", (websocket.WebSocketException,)),
    "ws-reserved-opcode": Expect("ws", (websocket.WebSocketProtocolException,), "Invalid opcode"),
    "ws-rsv-bits": Expect("ws", (websocket.WebSocketProtocolException,), "rsv"),
}


@pytest.fixture
def elsewhere() -> Iterator[socket.socket]:
    """A listener on 127.0.0.2 that redirects point to: no client may ever connect to it."""
    listener = socket.create_server(("127.0.0.2", 0))
    listener.setblocking(False)
    try:
        yield listener
    finally:
        listener.close()


def make_client(kind: str, url: str) -> Any:
    """A client of `kind` for the case at `url`, with the test's short time limits."""
    if kind == "http":
        return HTTPConnection(url.rsplit("/", 1)[0], timeout=HTTP_READ_S, limits=LIMITS)
    if kind == "sse":
        return SSEClient(url, timeout=SILENCE_S, limits=LIMITS)
    return WebSocketClient(url.replace("http://", "ws://"), timeout=SILENCE_S, limits=LIMITS)


def receive(kind: str, client: Any, url: str, received: list[Any]) -> None:
    """Drive the client as its Locust user would, keeping what it receives, until it raises (or enough came)."""
    if kind == "http":
        for _ in range(2):  # a second request shows what a bad first answer left on the connection
            received.append(client.get(url))
        return
    client.connect()
    items = client.items() if kind == "sse" else None
    for _ in range(RECEIVE_AT_MOST):
        received.append(next(items)[0] if items is not None else client.receive())


@dataclass
class Outcome:
    """How one client's run against one case ended."""

    received: list[Any]
    error: BaseException | None
    peak_bytes: int  # the most its thread (and this process) allocated at once, above what was held before


def drive(kind: str, url: str) -> Outcome:
    """Run one client against one case on a thread, measuring its allocations, within CASE_DEADLINE_S."""
    client = make_client(kind, url)
    received: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            receive(kind, client, url, received)
        except BaseException as error:  # noqa: BLE001 - the outcome under test
            errors.append(error)

    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(CASE_DEADLINE_S)
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    try:
        if worker.is_alive():
            sock = getattr(client, "sock", None)
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read
            worker.join(5)
            pytest.fail(f"the {kind} client still ran after {CASE_DEADLINE_S} s ({len(received)} items)")
    finally:
        client.close()
    return Outcome(received, errors[0] if errors else None, peak)


def test_every_case_has_an_expectation() -> None:
    assert sorted(EXPECT) == sorted(CASES)
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_client_ends_with_a_named_error_in_bounded_memory_and_time(name: str, hostile: int,
                                                                   elsewhere: socket.socket) -> None:
    expect = EXPECT[name]
    to = "%s:%d" % elsewhere.getsockname()
    outcome = drive(expect.client, f"http://127.0.0.1:{hostile}/{name}?to={to}")
    assert isinstance(outcome.error, expect.errors), f"{name}: {outcome.error!r}, expected one of {expect.errors}"
    assert re.search(expect.match, str(outcome.error)), f"{name}: {outcome.error}"
    assert expect.received(outcome.received), f"{name}: received {outcome.received!r:.300}"
    assert outcome.peak_bytes < MEMORY_BOUND[expect.client], f"{name}: peak {outcome.peak_bytes} bytes"
    with pytest.raises(BlockingIOError):
        elsewhere.accept()  # nothing connected where the redirect pointed
