"""Server-Sent Events client: a held HTTP/1.1 response (loadtests/transports/held_http.py) read by the SSE parser.

Its limits are the held response's (head time and size, silence between complete items: event, comment or
retry; no redirect) and the parser's (line and event size). No Locust import here, so the orchestrating process
can use it too: `open_check` is the sse transport's `rtcap check-target` hook (loadtests/run/check.py drives it).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from rtcap.targets.adapter_fields import parse_body
from rtcap.loadtests.transports.held_http import HeldResponse, HeldResponseError, StreamClosed
from rtcap.loadtests.transports.limits import DEFAULT_LIMITS, Limits
from rtcap.loadtests.transports.sse_parser import SSEComment, SSEEvent, SSEParser, SSERetry

__all__ = ["SSEClient", "SSEConnectError", "StreamClosed", "open_check"]

if TYPE_CHECKING:
    from rtcap.loadtests.transports.checking import Receiver
    from rtcap.targets.adapter import TargetAdapter
    from rtcap.targets.transports import Transport


class SSEConnectError(HeldResponseError):
    """The server did not answer with a 200 text/event-stream."""


class SSEClient(HeldResponse):
    """One SSE connection: `connect()` sends the request (with Last-Event-ID when resuming) and reads the head,
    `items()` yields parsed events, comments and retries."""

    accept = "text/event-stream"
    what = "SSE event, comment or retry"
    connect_error = SSEConnectError

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 60.0,
                 last_event_id: str | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(url, headers, timeout, limits)
        self.last_event_id = last_event_id

    def new_parser(self) -> SSEParser:
        """The SSE wire format, with the line and event limits."""
        return SSEParser(max_line=self.limits.sse_line_bytes, max_event=self.limits.sse_event_bytes)

    def accepts(self, content_type: str) -> bool:
        """text/event-stream, with or without parameters."""
        return content_type.startswith(self.accept)

    def request_headers(self) -> list[tuple[str, str]]:
        """Last-Event-ID when resuming (the parser starts from it too)."""
        if self.last_event_id is None:
            return []
        self.parser.last_event_id = self.last_event_id
        return [("Last-Event-ID", self.last_event_id)]

    def items(self) -> Iterator[tuple[SSEEvent | SSEComment | SSERetry, float]]:
        """Yield each parsed item with its receive time (unix seconds) until the stream ends."""
        return super().items()


def open_check(adapter: TargetAdapter, record: Transport, timeout: float, receiver: Receiver) -> float:
    """`rtcap check-target`: open the stream and hand each event's (message, receive time, id) to `receiver`;
    return the time to the response head in ms."""
    client = receiver.client = SSEClient(adapter.url_for(record.name), headers=adapter.headers, timeout=timeout)
    connect_ms = client.connect()

    def read_sse() -> None:
        for item, received_at in client.items():
            if isinstance(item, SSEEvent):
                receiver.items.put((parse_body(item.data), received_at, item.id))
    receiver.run(read_sse)
    return connect_ms
