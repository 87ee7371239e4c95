"""HTTP endpoints: publish, short/long polling with ETags, and full-state polling."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from .aio import race, wait_disconnect
from .calibration import Calibration, sleep_until
from .config import NAME_PATTERN, TargetConfig
from .hub import Channel, Event, Hub

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


async def _wait_visible(ch: Channel, seen: int, timeout: float, delay: float) -> None:
    """Long poll under --delay-ms: wait for an event after `seen`, then until it is `delay` old."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    if not await ch.wait_after(seen, timeout) or delay <= 0:
        return
    first = ch.after(seen, 1)
    if first:
        await sleep_until(first[0].ts + delay, limit=deadline)


def _visible(ch: Channel, delay: float) -> int:
    """The channel's latest seq as polls see it: events become visible once `delay` old."""
    return ch.seq_at(time.time() - delay) if delay > 0 else ch.seq


def add_polling_routes(app: FastAPI, hub: Hub, config: TargetConfig, calibration: Calibration | None = None) -> None:
    """Register /publish, /poll and /state on `app`."""
    metrics = hub.metrics
    cal = calibration or Calibration(config, metrics)
    default = config.default_channel
    limit = config.max_message_bytes
    # The part of a full state that does not change between polls (a scoreboard's teams, names, layout).
    board = b'"board":"%s",' % (b"x" * config.state_bytes) if config.state_bytes else b""

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
            if cal.active:
                return await _calibrated_poll(request, channel, since, wait, transport)
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

    async def _calibrated_poll(request: Request, channel: str, since: int, wait: float, transport: str) -> Response:
        """/poll under the calibration knobs: the channel as it was delay ago, faults applied."""
        ch = hub.channel(channel)
        if_none_match = request.headers.get("if-none-match")
        top = _visible(ch, cal.delay)
        seen = max(since, top) if etag_matches(if_none_match, ch.etag_at(top)) else since
        if wait > 0 and top <= seen:
            waiting = _wait_visible(ch, seen, min(wait, MAX_WAIT_S), cal.delay)
            await race(waiting, wait_disconnect(request.receive))
            top = _visible(ch, cal.delay)
        etag = ch.etag_at(top)
        if etag_matches(if_none_match, etag):
            return Response(status_code=304, headers={"ETag": etag})
        events: list[Event] = ch.after(since, MAX_POLL_EVENTS)
        if top < ch.seq:
            events = [e for e in events if e.seq <= top]
        events = cal.shape(events, transport)
        metrics.delivered[transport].inc(len(events))
        body = b'{"channel":%s,"seq":%d,%s"events":[%s]}' % (
            json.dumps(channel).encode(),
            top,
            b'"gap":true,' if ch.gap(since) else b"",
            b",".join(e.data for e in events),
        )
        return Response(body, media_type=JSON, headers={"ETag": etag})

    @app.get("/state")
    async def state(channel: ChannelParam = default) -> Response:
        """The whole buffered state of a channel, every time (no conditional requests)."""
        gauge = metrics.open["poll"]
        gauge.inc()
        try:
            ch = hub.channel(channel)
            if cal.active:
                return _calibrated_state(ch, channel)
            events = list(ch.events)
            last = ch.last
            metrics.delivered["poll"].inc(len(events))
            body = b'{"channel":%s,"seq":%d,"ts":%s,%s"events":[%s]}' % (
                json.dumps(channel).encode(),
                ch.seq,
                json.dumps(last.ts if last else None).encode(),
                board,
                b",".join(e.data for e in events),
            )
            return Response(body, media_type=JSON)
        finally:
            gauge.dec()

    def _calibrated_state(ch: Channel, channel: str) -> Response:
        """/state under the calibration knobs: the buffer as it was delay ago, faults applied."""
        top = _visible(ch, cal.delay)
        visible = [e for e in ch.events if e.seq <= top]
        last = visible[-1] if visible else None
        events = cal.shape(visible, "poll")
        metrics.delivered["poll"].inc(len(events))
        body = b'{"channel":%s,"seq":%d,"ts":%s,%s"events":[%s]}' % (
            json.dumps(channel).encode(),
            top,
            json.dumps(last.ts if last else None).encode(),
            board,
            b",".join(e.data for e in events),
        )
        return Response(body, media_type=JSON)
