"""HTTP endpoints: publish, short/long polling and full-state polling, with conditional GETs and the answer cache.

A poll's answer is built in full first (`Answer`), then either taken from the --cache-ttl cache or built by
its handler, and only then checked against the client's validators (conditional.py): the same 304 logic
serves fresh and cached answers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from .aio import race, wait_disconnect
from .broker import BrokerUnavailable
from .calibration import Calibration, sleep_until
from .conditional import JSON, Answer, etag_matches, last_modified, respond
from .config import NAME_PATTERN, TargetConfig
from .httpcache import AnswerCache, AnswerCounters
from .hub import Channel, Hub, LimitReached

__all__ = ["MAX_POLL_EVENTS", "MAX_WAIT_S", "add_polling_routes", "etag_matches"]

MAX_WAIT_S = 30.0
MAX_POLL_EVENTS = 1000

ChannelParam = Annotated[str, Query(pattern=NAME_PATTERN, description="Channel name.")]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps({"error": message}), status_code=status, media_type=JSON, headers=headers)


def too_many(hub: Hub, channel: str) -> Response | None:
    """A 429 answer if `channel` is new and the hub holds --max-channels already; None when it may be used."""
    try:
        hub.channel(channel)
    except LimitReached as exc:
        return _error(429, str(exc))
    return None


async def _wait_visible(ch: Channel, seen: int, timeout: float, delay: float) -> None:
    """Long poll: wait for an event after `seen`, then (under --delay-ms) until it is `delay` old."""
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


def _published_at(ch: Channel, seq: int) -> float | None:
    """Publish time of event `seq` if it is still buffered (the newest one an answer shows)."""
    last = ch.last
    if last is not None and last.seq == seq:
        return last.ts
    found = ch.after(seq - 1, 1) if seq > 0 else []
    return found[0].ts if found else None


def add_polling_routes(app: FastAPI, hub: Hub, config: TargetConfig, calibration: Calibration | None = None) -> None:
    """Register /publish, /poll and /state on `app`."""
    metrics = hub.metrics
    counters = AnswerCounters(metrics.registry)
    cache = AnswerCache(config.cache_ttl)
    cal = calibration or Calibration(config, metrics)
    default = config.default_channel
    limit = config.max_message_bytes
    # The part of a full state that does not change between polls (a scoreboard's teams, names, layout).
    board = b'"board":"%s",' % (b"x" * config.state_bytes) if config.state_bytes else b""

    def answer(request: Request, endpoint: str, key: tuple, build: Callable[[], Answer], conditional: bool = True,
               cacheable: bool = True) -> Response:
        """Take the answer from the cache or build it, then answer 304 or 200 and count what happened."""
        extra = None
        if cache.enabled and cacheable:
            cached = cache.fetch(key, build)
            full, extra = cached.answer, cached.headers
            (counters.hits if cached.hit else counters.runs)[endpoint].inc()
        else:
            full = build()
            counters.runs[endpoint].inc()
        response = respond(request.headers, full, conditional, extra)
        if response.status_code == 304:
            counters.not_modified[endpoint].inc()
        else:
            metrics.delivered["poll" if endpoint == "state" else endpoint].inc(full.events)
        return response

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
        refused = too_many(hub, channel)
        if refused is not None:
            return refused
        try:
            event = await hub.broker.publish(channel, fields)
        except BrokerUnavailable as exc:
            return _error(503, str(exc), {"Retry-After": "1"})
        return Response(b'{"seq":%d,"ts":%r}' % (event.seq, event.ts), media_type=JSON)

    def poll_answer(channel: str, since: int, transport: str) -> Answer:
        """Events after `since` as polls see the channel now (as it was --delay-ms ago, faults applied)."""
        ch = hub.channel(channel)
        top = _visible(ch, cal.delay)
        events = ch.after(since, MAX_POLL_EVENTS)
        if top < ch.seq:
            events = [e for e in events if e.seq <= top]
        if cal.active:
            events = cal.shape(events, transport)
        body = b'{"channel":%s,"seq":%d,%s"events":[%s]}' % (
            json.dumps(channel).encode(),
            top,
            b'"gap":true,' if ch.gap(since) else b"",
            b",".join(e.data for e in events),
        )
        modified = _published_at(ch, top)
        return Answer(body, ch.etag_at(top), modified, last_modified(modified), len(events))

    @app.get("/poll")
    async def poll(
        request: Request,
        channel: ChannelParam = default,
        since: Annotated[int, Query(description="Last seq the client has.")] = 0,
        wait: Annotated[float, Query(ge=0, description="Long-poll: hold up to this many seconds (max 30).")] = 0.0,
    ) -> Response:
        """Events after `since` (short poll), or held until one arrives (long poll, `wait` > 0)."""
        refused = too_many(hub, channel)
        if refused is not None:
            return refused
        transport = "longpoll" if wait > 0 else "poll"
        gauge = metrics.open[transport]
        gauge.inc()
        try:
            await hub.broker.sync(channel)  # read the deployment's state, not only this worker's
            if wait > 0:
                ch = hub.channel(channel)
                top = _visible(ch, cal.delay)
                # A matching ETag means the client already holds everything up to the latest seq.
                seen = max(since, top) if etag_matches(request.headers.get("if-none-match"), ch.etag_at(top)) else since
                if top <= seen:
                    # Also watch the socket, so an abandoned long poll frees its slot at once
                    # rather than when the wait expires.
                    waiting = _wait_visible(ch, seen, min(wait, MAX_WAIT_S), cal.delay)
                    first, _ = await race(waiting, wait_disconnect(request.receive))
                    if first == 1:
                        return Response(status_code=204)  # nobody is left to read an answer: build none, count none
            # Long polls are never cached: they wait for news, and a cached answer would be old news.
            return answer(request, transport, ("poll", channel, since), lambda: poll_answer(channel, since, transport),
                          cacheable=wait == 0)
        finally:
            gauge.dec()

    def state_answer(channel: str) -> Answer:
        """The whole buffered state of a channel (as it was --delay-ms ago, faults applied)."""
        ch = hub.channel(channel)
        top = _visible(ch, cal.delay)
        visible = [e for e in ch.events if e.seq <= top] if top < ch.seq else list(ch.events)
        last = visible[-1] if visible else None
        events = cal.shape(visible, "poll") if cal.active else visible
        body = b'{"channel":%s,"seq":%d,"ts":%s,%s"events":[%s]}' % (
            json.dumps(channel).encode(),
            top,
            json.dumps(last.ts if last else None).encode(),
            board,
            b",".join(e.data for e in events),
        )
        modified = last.ts if last else None
        return Answer(body, ch.etag_at(top), modified, last_modified(modified), len(events))

    @app.get("/state")
    async def state(
        request: Request,
        channel: ChannelParam = default,
        conditional: Annotated[bool, Query(description="Send ETag/Last-Modified and answer 304 when they "
                                           "match (default: the whole state every time).")] = False,
    ) -> Response:
        """The whole buffered state of a channel, every time unless `conditional` is set."""
        refused = too_many(hub, channel)
        if refused is not None:
            return refused
        gauge = metrics.open["poll"]
        gauge.inc()
        try:
            await hub.broker.sync(channel)
            return answer(request, "state", ("state", channel), lambda: state_answer(channel),
                          conditional or config.state_validators)
        finally:
            gauge.dec()
