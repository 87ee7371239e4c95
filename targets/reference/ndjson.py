"""NDJSON streaming endpoint: a channel's events as one JSON object per line on one held chunked response.

The same events, admission, accounting, ballast, calibration and disconnect handling as the SSE route
(`sse.EventStream`, whose lifecycle this reuses); only the framing differs: each event is its JSON text and a
`\\n` (what SSE sends as `data:`), a quiet stream gets a blank keep-alive line every --heartbeat seconds, and a
reconnecting client resumes with `?since=SEQ` (NDJSON has no Last-Event-ID).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.responses import Response

from .calibration import Calibration
from .config import TargetConfig
from .hub import Event, Hub
from .sse import ChannelParam, EventStream, _parse_seq, admit

TRANSPORT = "ndjson"
MEDIA_TYPE = "application/x-ndjson"
KEEPALIVE = b"\n"
"""A blank line: NDJSON readers skip it, and it keeps proxies and idle timers from closing a quiet stream."""


def ndjson_body(events: list[Event]) -> bytes:
    """The wire form of events written together: each one's JSON text (serialised once for every transport, what
    SSE sends as `data:`) and a line break."""
    return b"".join(event.data + b"\n" for event in events)


class NDJSONStream(EventStream):
    """ASGI response that streams one subscriber's events as application/x-ndjson (the SSE stream's lifecycle
    and write loops, NDJSON's framing)."""

    transport = TRANSPORT
    media_type = MEDIA_TYPE
    content_type = MEDIA_TYPE.encode()
    keepalive = KEEPALIVE

    def preamble(self) -> bytes:
        """Nothing: NDJSON has no reconnect hint."""
        return b""

    def frame(self, events: list[Event]) -> bytes:
        """One JSON text and a line break per event."""
        return ndjson_body(events)


def add_ndjson_route(app: FastAPI, hub: Hub, config: TargetConfig, calibration: Calibration | None = None) -> None:
    """Register GET /ndjson on `app`."""

    @app.get("/ndjson")
    async def ndjson(
        channel: ChannelParam = config.default_channel,
        since: Annotated[str | None, Query(description="Replay buffered events after this seq first.")] = None,
    ) -> Response:
        """Stream a channel as newline-delimited JSON, replaying after `since` if given."""
        sub = admit(hub, channel, TRANSPORT, config)
        if isinstance(sub, Response):
            return sub
        # An unusable since means "no replay", as an unusable Last-Event-ID does for SSE.
        return NDJSONStream(hub, sub, channel, _parse_seq(since), config, calibration)
