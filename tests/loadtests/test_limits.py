"""The limits' defaults and errors, and the read deadline and budget of the byte-counting socket."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from rtcap.loadtests.transports import limits, netio
from rtcap.loadtests.transports.limits import DEFAULT_LIMITS, LimitExceeded, RedirectRefused, TimeLimitExceeded, for_read_timeout, size
from rtcap.loadtests.transports.netio import CountingSocket


@pytest.fixture
def pair() -> Iterator[tuple[CountingSocket, socket.socket]]:
    """A counting socket (5 s per operation) and its peer, connected."""
    ours, theirs = socket.socketpair()
    ours.settimeout(5.0)
    try:
        yield CountingSocket(ours), theirs
    finally:
        ours.close()
        theirs.close()


def test_the_docstring_table_states_the_defaults() -> None:
    rows = dict(re.findall(r"^\| ([A-Z_]+) +\| ([^|]+?) +\|", limits.__doc__ or "", re.MULTILINE))
    for name, stated in rows.items():
        value = getattr(limits, name)
        shown = f"{value:g} s" if name.endswith("_S") else size(value) if name.endswith("_BYTES") else str(value)
        assert stated == shown, name
    assert set(rows) == {"HTTP_HEAD_BYTES", "HTTP_BODY_BYTES", "SSE_LINE_BYTES", "SSE_EVENT_BYTES",
                         "WS_MESSAGE_BYTES", "HEAD_TIMEOUT_S", "BODY_TIMEOUT_S", "MAX_REDIRECTS"}


def test_limit_errors_are_broken_connections_to_every_caller() -> None:
    for error in (LimitExceeded("x"), TimeLimitExceeded("x"), RedirectRefused("x")):
        # Polls and fetches catch OSError; stream users' stream_errors hold OSError and ValueError (Locust is
        # not imported here: it would patch this process for gevent; test_users_report_limits drives them).
        assert isinstance(error, OSError) and isinstance(error, ValueError)
        assert str(error) == "x"
    # websocket-client would swallow a TimeoutError into its own anonymous timeout
    assert not issubclass(TimeLimitExceeded, TimeoutError)


def test_no_deadline_is_longer_than_the_read_timeout() -> None:
    assert for_read_timeout(60) == DEFAULT_LIMITS
    short = for_read_timeout(5)
    assert (short.head_timeout, short.body_timeout) == (5, 5)
    held = for_read_timeout(45, holds=True)  # a long poll waits for its head as long as a stream may be silent
    assert (held.head_timeout, held.body_timeout) == (45, DEFAULT_LIMITS.body_timeout)
    assert short.http_body_bytes == DEFAULT_LIMITS.http_body_bytes


def test_sizes_read_as_people_write_them() -> None:
    assert [size(n) for n in (64 * 1024, 8 * 1024 * 1024, 1000, 1536)] == ["64 KiB", "8 MiB", "1000 bytes", "1536 bytes"]


def test_a_silent_peer_hits_the_read_deadline_not_the_operation_timeout(pair) -> None:
    ours, _theirs = pair
    ours.read_deadline(0.2, "nothing in 0.2 s")
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded, match="nothing in 0.2 s"):
        ours.recv(100)
    assert 0.15 < time.monotonic() - started < 2.0


def test_a_trickling_peer_hits_the_read_deadline(pair, monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = pair
    clock = iter(range(1000))  # each reading of the clock is one second later
    monkeypatch.setattr(netio, "time", SimpleNamespace(monotonic=lambda: float(next(clock))))
    ours.read_deadline(5.0, "trickled")
    received = b""
    with pytest.raises(TimeLimitExceeded, match="trickled"):
        for _ in range(100):
            theirs.send(b"x")  # one byte before every read: no operation timeout would ever fire
            received += ours.recv(10)
    assert 1 <= len(received) <= 5


def test_without_a_deadline_the_operation_timeout_stays_a_plain_timeout(pair) -> None:
    ours, _theirs = pair
    ours.settimeout(0.1)
    ours.read_deadline(30.0, "far away")
    with pytest.raises(TimeoutError) as raised:
        ours.recv(100)
    assert not isinstance(raised.value, TimeLimitExceeded)
    ours.read_deadline(None)
    with pytest.raises(TimeoutError):
        ours.recv(100)
    assert ours.gettimeout() == 0.1


def test_a_read_budget_reads_no_byte_past_one_over_it(pair) -> None:
    ours, theirs = pair
    theirs.sendall(b"y" * 100)
    ours.read_budget(10, "over budget")
    assert ours.recv(4) == b"yyyy"
    with pytest.raises(LimitExceeded, match="over budget"):
        ours.recv(1000)
    assert ours.bytes_received == 11  # the other 89 bytes were never read
    ours.read_budget(None)
    assert len(ours.recv(1000)) == 89


def test_options_where_declared_set_the_limits_of_a_user() -> None:
    declared = SimpleNamespace(read_timeout=20.0, max_message_bytes=4 * limits.MIB, max_body_bytes=limits.MIB,
                               head_timeout=10.0)
    chosen = limits.for_settings(declared)
    assert (chosen.sse_line_bytes, chosen.sse_event_bytes, chosen.ws_message_bytes) == (4 * limits.MIB,) * 3
    assert (chosen.http_body_bytes, chosen.head_timeout, chosen.body_timeout) == (limits.MIB, 10.0, 20.0)
    assert limits.for_settings(SimpleNamespace(read_timeout=60.0)) == DEFAULT_LIMITS  # options not declared
    assert limits.for_settings(SimpleNamespace(read_timeout=60.0), holds=True).head_timeout == 60.0
