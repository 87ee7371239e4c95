"""HTTP endpoints: publish, short/long polling with ETags, and full-state polling."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from .aio import race, wait_disconnect
from .config import NAME_PATTERN, TargetConfig
from .hub import Hub

MAX_WAIT_S = 30.0
MAX_POLL_EVENTS = 1000
JSON = "application/json"

ChannelParam = Annotated[str, Query(pattern=NAME_PATTERN, description="Channel name.")]


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True if an If-None-Match header value names `etag` (weak prefixes and lists allowed)."""
    if not if_none_match:
        return False
    tags = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return any(tag in (etag, "*") for tag in tags)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps({"error": message}), status_code=status, media_type=JSON, headers=headers)


def add_polling_routes(app: FastAPI, hub: Hub, config: TargetConfig) -> None:
    """Register /publish, /poll and /state on `app`."""
    metrics = hub.metrics
    default = config.default_channel
    limit = config.max_message_bytes

    @app.post("/publish")
    async def publish(request: Request, channel: ChannelParam = default) -> Response:
        """Publish one event whose fields are the JSON object body plus seq/ts/channel."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            # Refuse before reading; close so the unread body cannot poison the connection.
            return _error(413, f"body larger than {limit} bytes", {"Connection": "close"})
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _error(413, f"body larger than {limit} bytes", {"Connection": "close"})
        fields = {}
        if body.strip():
            try:
                fields = json.loads(body)
            except ValueError as exc:
                return _error(400, f"body is not valid JSON: {exc}")
            if not isinstance(fields, dict):
                return _error(400, "body must be a JSON object")
        event = hub.publish(channel, fields)
        return Response(b'{"seq":%d,"ts":%r}' % (event.seq, event.ts), media_type=JSON)

    @app.get("/poll")
    async def poll(
        request: Request,
        channel: ChannelParam = default,
        since: Annotated[int, Query(description="Last seq the client has.")] = 0,
        wait: Annotated[float, Query(ge=0, description="Long-poll: hold up to this many seconds (max 30).")] = 0.0,
    ) -> Response:
        """Events after `since` (short poll), or held until one arrives (long poll, `wait` > 0)."""
        transport = "longpoll" if wait > 0 else "poll"
        gauge = metrics.open[transport]
        gauge.inc()
        try:
            ch = hub.channel(channel)
            if_none_match = request.headers.get("if-none-match")
            # A matching ETag means the client already holds everything up to the latest seq.
            seen = max(since, ch.seq) if etag_matches(if_none_match, ch.etag) else since
            if wait > 0 and ch.seq <= seen:
                # Also watch the socket, so an abandoned long poll frees its slot at once
                # rather than when the wait expires.
                await race(ch.wait_after(seen, min(wait, MAX_WAIT_S)), wait_disconnect(request.receive))
            etag = ch.etag
            if etag_matches(if_none_match, etag):
                return Response(status_code=304, headers={"ETag": etag})
            events = ch.after(since, MAX_POLL_EVENTS)
            metrics.delivered[transport].inc(len(events))
            body = b'{"channel":%s,"seq":%d,%s"events":[%s]}' % (
                json.dumps(channel).encode(),
                ch.seq,
                b'"gap":true,' if ch.gap(since) else b"",
                b",".join(e.data for e in events),
            )
            return Response(body, media_type=JSON, headers={"ETag": etag})
        finally:
            gauge.dec()

    @app.get("/state")
    async def state(channel: ChannelParam = default) -> Response:
        """The whole buffered state of a channel, every time (no conditional requests)."""
        gauge = metrics.open["poll"]
        gauge.inc()
        try:
            ch = hub.channel(channel)
            events = list(ch.events)
            last = ch.last
            metrics.delivered["poll"].inc(len(events))
            body = b'{"channel":%s,"seq":%d,"ts":%s,"events":[%s]}' % (
                json.dumps(channel).encode(),
                ch.seq,
                json.dumps(last.ts if last else None).encode(),
                b",".join(e.data for e in events),
            )
            return Response(body, media_type=JSON)
        finally:
            gauge.dec()
