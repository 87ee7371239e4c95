"""How much a misbehaving server may make a client buffer or wait, and the error a client raises past that.

A load generator meets servers under test that are broken, overloaded or hostile. Without limits one bad
answer can freeze a sweep (a 16 MB WebSocket frame, a 10 MB SSE event parsed quadratically) or quietly hide
the target's failure (a poll whose server sends its head and goes silent counts as nothing at all). Every
client path (polls, fetches, SSE streams, WebSocket feeds) therefore bounds what it holds and how long it
waits, and reports a broken limit as a failed exchange against the target, never as a measurement.

| limit            | default | what happens past it                                                       |
|------------------|---------|----------------------------------------------------------------------------|
| HTTP_HEAD_BYTES  | 64 KiB  | response head (status line and headers; also a chunk header) refused       |
| HTTP_BODY_BYTES  | 8 MiB   | response body refused (at once when its Content-Length says so)            |
| SSE_LINE_BYTES   | 1 MiB   | SSE line refused (a `data:` line may carry a whole event: same as events)  |
| SSE_EVENT_BYTES  | 1 MiB   | SSE event refused (its data lines, line breaks not counted)                |
| WS_MESSAGE_BYTES | 1 MiB   | WebSocket message refused from its frame headers, before its payload       |
| HEAD_TIMEOUT_S   | 30 s    | no complete response head (or WebSocket handshake answer) in time          |
| BODY_TIMEOUT_S   | 30 s    | response body not complete this long after its head                        |
| MAX_REDIRECTS    | 0       | a 3xx answer (not 304) is an error naming its Location; never followed,   |
|                  |         | unless the adapter sets follow_redirects (same origin only, 5 hops)        |

Streams (SSE, WebSocket) have no body deadline: `--read-timeout` (60 s) is the longest they may go without
a complete item (SSE event, comment or retry; WebSocket frame), so a server trickling one byte at a time
cannot hold a connection that delivers nothing. No time limit is longer than `--read-timeout`; a held
request (long poll) may wait for its head the whole `--read-timeout` (see `for_read_timeout`).

`LimitExceeded` is both an OSError and a ValueError: every caller that treats a failed exchange as a broken
connection (`except OSError`, the stream users' `stream_errors`) already reports it against the target and
closes the connection, and nothing past the limit stays in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

KIB = 1024
MIB = 1024 * KIB

HTTP_HEAD_BYTES = 64 * KIB
HTTP_BODY_BYTES = 8 * MIB
SSE_LINE_BYTES = 1 * MIB
SSE_EVENT_BYTES = 1 * MIB
WS_MESSAGE_BYTES = 1 * MIB
HEAD_TIMEOUT_S = 30.0
BODY_TIMEOUT_S = 30.0
MAX_REDIRECTS = 0
REDIRECT_STATUSES = frozenset({300, 301, 302, 303, 307, 308})
"""3xx answers that send the client elsewhere (304 Not Modified is an answer, not a redirect)."""


class LimitExceeded(OSError, ValueError):
    """A server went past one of the client's limits; the exchange is abandoned and its connection closed.

    Raised with one argument, the message (an OSError given two would read the first as an errno)."""


class TimeLimitExceeded(LimitExceeded):
    """A server took longer than a time limit. Deliberately not a TimeoutError: websocket-client turns those
    into its own anonymous timeout, and this one should reach the report with its message."""


class RedirectRefused(LimitExceeded):
    """A server answered with a redirect the client does not follow: any, by default; with the adapter's
    follow_redirects, one that leaves the origin or goes past the hop limit (loadtests/transports/http_client.py)."""


@dataclass(frozen=True)
class Limits:
    """The limits one client applies; the defaults are the constants above."""

    http_head_bytes: int = HTTP_HEAD_BYTES
    http_body_bytes: int = HTTP_BODY_BYTES
    sse_line_bytes: int = SSE_LINE_BYTES
    sse_event_bytes: int = SSE_EVENT_BYTES
    ws_message_bytes: int = WS_MESSAGE_BYTES
    head_timeout: float = HEAD_TIMEOUT_S
    body_timeout: float = BODY_TIMEOUT_S


DEFAULT_LIMITS = Limits()


def for_read_timeout(read_timeout: float, holds: bool = False, base: Limits = DEFAULT_LIMITS) -> Limits:
    """The limits of a client whose longest allowed silence is `read_timeout` seconds: no deadline is longer.

    A held request (`holds`, long polling) gets no head before the server has news, so its head may take the
    whole `read_timeout`, like the silence of a stream."""
    head = read_timeout if holds else min(base.head_timeout, read_timeout)
    return replace(base, head_timeout=head, body_timeout=min(base.body_timeout, read_timeout))


def for_settings(settings: Any, holds: bool = False) -> Limits:
    """The limits of a Locust user from its options: `max_message_bytes` (SSE lines and events, WebSocket
    messages), `max_body_bytes` and `head_timeout` where the options declare them, the defaults otherwise;
    then no deadline longer than `read_timeout` (see for_read_timeout)."""
    message = getattr(settings, "max_message_bytes", None) or WS_MESSAGE_BYTES
    base = Limits(http_body_bytes=getattr(settings, "max_body_bytes", None) or HTTP_BODY_BYTES,
                  sse_line_bytes=message, sse_event_bytes=message, ws_message_bytes=message,
                  head_timeout=getattr(settings, "head_timeout", None) or HEAD_TIMEOUT_S)
    return for_read_timeout(settings.read_timeout, holds, base)


def size(count: int) -> str:
    """A byte count as people write limits: "64 KiB", "1 MiB", "1000 bytes"."""
    for unit, name in ((MIB, "MiB"), (KIB, "KiB")):
        if count >= unit and count % unit == 0:
            return f"{count // unit} {name}"
    return f"{count} bytes"


def redirect_error(status: int, location: str | None, url: str) -> RedirectRefused:
    """The error for a redirect answer, naming where it pointed."""
    return RedirectRefused(f"HTTP {status} from {url}: redirected to {location or '(no Location)'}; "
                           "redirects are not followed")
