"""Server-Sent Events endpoint with Last-Event-ID replay, heartbeats and prompt disconnect detection."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from .aio import race, wait_disconnect
from .calibration import Calibration
from .config import NAME_PATTERN, TargetConfig
from .hub import Event, Hub, Subscriber
from .polling import too_many

# Events coalesced into one write when a subscriber has a backlog: fewer syscalls per event.
MAX_BATCH = 256
# How long a final write may take once a stream is ending (a stuck peer must not hold shutdown).
FINAL_WRITE_TIMEOUT_S = 1.0

ChannelParam = Annotated[str, Query(pattern=NAME_PATTERN, description="Channel name.")]


def _parse_seq(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # an unusable Last-Event-ID means "no replay", not an error


class EventStream(Response):
    """ASGI response that streams one subscriber's events on a held response, as text/event-stream.

    Admission, accounting, ballast, calibration, heartbeats and disconnect handling are the same for every held
    HTTP stream; a subclass changes only the framing (`transport`, `content_type`, `preamble`, `keepalive`,
    `frame`), as the NDJSON route does."""

    transport = "sse"
    media_type = "text/event-stream"
    content_type = b"text/event-stream; charset=utf-8"
    keepalive = b": hb\n\n"
    """Written when the stream has been quiet for --heartbeat seconds: keeps proxies and idle timers from
    closing it."""

    def preamble(self) -> bytes:
        """Written once, before the replay: the reconnect delay EventSource should use."""
        return b"retry: %d\n\n" % self.retry_ms

    def frame(self, events: list[Event]) -> bytes:
        """The wire form of events written together."""
        return b"".join(e.sse_frame() for e in events)

    def __init__(
        self,
        hub: Hub,
        sub: Subscriber,
        channel: str,
        since: int | None,
        config: TargetConfig,
        calibration: Calibration | None = None,
    ) -> None:
        # Response.__init__ is skipped on purpose: it would add "content-length: 0".
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", self.content_type),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self.hub, self.sub, self.channel, self.since = hub, sub, channel, since
        self.retry_ms = config.retry_ms
        self.heartbeat = config.heartbeat
        self.calibration = calibration if calibration is not None and calibration.active else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            # Caught up with the deployment, then subscribed with no await in between: no gap, no overlap.
            await self.hub.broker.sync(self.channel)
            replay = self.hub.subscribe(self.sub, self.channel, since=self.since)
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            writer = self._write(send, replay) if self.calibration is None else self._write_calibrated(send, replay)
            ended_by, _ = await race(writer, wait_disconnect(receive), self.sub.wait_closed())
            if ended_by != 1:  # the peer is still there: end the chunked body properly
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": b"", "more_body": False}), FINAL_WRITE_TIMEOUT_S
                )
        except (OSError, TimeoutError):
            pass  # peer gone or not reading; uvicorn closes the socket
        finally:
            self.hub.disconnect(self.sub)

    async def _write(self, send: Send, replay: list[Event]) -> None:
        delivered = self.hub.metrics.delivered[self.transport]
        body = self.preamble() + self.frame(replay)
        if body:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        delivered.inc(len(replay))
        queue: asyncio.Queue[Any] = self.sub.queue
        while True:
            if queue.empty():
                try:
                    if self.heartbeat > 0:
                        event = await asyncio.wait_for(queue.get(), self.heartbeat)
                    else:
                        event = await queue.get()
                except TimeoutError:
                    await send({"type": "http.response.body", "body": self.keepalive, "more_body": True})
                    continue
            else:
                event = queue.get_nowait()
            batch = [event]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            await send({"type": "http.response.body", "body": self.frame(batch), "more_body": True})
            delivered.inc(len(batch))

    async def _next(self, send: Send, queue: asyncio.Queue[Any]) -> Event:
        """The next queued event, sending heartbeats while the stream is quiet."""
        while True:
            if not queue.empty():
                return queue.get_nowait()
            if self.heartbeat <= 0:
                return await queue.get()
            try:
                return await asyncio.wait_for(queue.get(), self.heartbeat)
            except TimeoutError:
                await send({"type": "http.response.body", "body": self.keepalive, "more_body": True})

    async def _write_calibrated(self, send: Send, replay: list[Event]) -> None:
        """_write() under the calibration knobs: each event written once it is delay old, faults applied.

        Replay and live events go through the same per-connection rules, in seq order.
        """
        cal = self.calibration
        assert cal is not None
        delivered = self.hub.metrics.delivered[self.transport]
        injector = cal.injector(self.transport)
        delay = cal.delay
        preamble = self.preamble()
        if preamble:
            await send({"type": "http.response.body", "body": preamble, "more_body": True})
        queue: asyncio.Queue[Any] = self.sub.queue
        backlog: deque[Event] = deque(replay)  # replay first, then at most one live event put back
        while True:
            event = backlog.popleft() if backlog else await self._next(send, queue)
            if delay > 0:
                await cal.wait_due(event)
            out = injector.apply(event) if injector is not None else [event]
            # Coalesce whatever else is already due, as _write() does with a backlog.
            while len(out) < MAX_BATCH:
                if backlog:
                    nxt = backlog.popleft()
                elif not queue.empty():
                    nxt = queue.get_nowait()
                else:
                    break
                if delay > 0 and nxt.ts + delay > time.time():
                    backlog.appendleft(nxt)
                    break
                out += injector.apply(nxt) if injector is not None else [nxt]
            if out:
                await send({"type": "http.response.body", "body": self.frame(out), "more_body": True})
                delivered.inc(len(out))


def admit(hub: Hub, channel: str, transport: str, config: TargetConfig) -> Subscriber | Response:
    """A stream slot for a new subscriber, or the refusal to send: 429 past --max-channels (before a slot is
    taken: channels are never freed), 503 with Retry-After past --max-connections."""
    refused = too_many(hub, channel)
    if refused is not None:
        return refused
    sub = hub.connect(transport)
    if sub is None:
        return Response(json.dumps({"error": "too many connections"}), status_code=503, media_type="application/json",
                        headers={"Retry-After": str(max(1, config.retry_ms // 1000))})
    return sub


def add_sse_route(app: FastAPI, hub: Hub, config: TargetConfig, calibration: Calibration | None = None) -> None:
    """Register GET /sse on `app`."""

    @app.get("/sse")
    async def sse(
        request: Request,
        channel: ChannelParam = config.default_channel,
        last_event_id: Annotated[str | None, Query(description="Replay events after this seq.")] = None,
    ) -> Response:
        """Stream a channel as Server-Sent Events, replaying after Last-Event-ID if given."""
        # The header is what EventSource sends on reconnect, so it wins over the query parameter.
        since = _parse_seq(request.headers.get("last-event-id", last_event_id))
        sub = admit(hub, channel, EventStream.transport, config)
        if isinstance(sub, Response):
            return sub
        return EventStream(hub, sub, channel, since, config, calibration)
