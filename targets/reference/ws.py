"""WebSocket endpoints: the channel feed (/ws) and typed chat rooms (/ws/chat)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, Query, WebSocket, WebSocketDisconnect

from .aio import race
from .calibration import Calibration
from .config import NAME_PATTERN, TargetConfig, valid_name
from .hub import Channel, Event, Hub, LimitReached, Subscriber, encode
from .seqset import SeqSet

INDICATORS = ("typing", "presence")
"""Chat message types broadcast to the room as they are (no text needed): typing and presence indicators."""
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008  # slow consumers (they broke the "keep reading" contract) and channel/room limits
CLOSE_TOO_BIG = 1009
CLOSE_ERROR = 1011
CLOSE_TRY_LATER = 1013
FINAL_CLOSE_TIMEOUT_S = 1.0

ChannelParam = Annotated[str, Query(pattern=NAME_PATTERN, description="Channel name.")]
RoomParam = Annotated[str, Query(pattern=NAME_PATTERN, description="Chat room name.")]


@dataclass(frozen=True)
class Resume:
    """Queued request to replay buffered events after `since` (handled by the sender task)."""

    since: int


def pong() -> str:
    """The reply to a client ping."""
    return encode({"type": "pong", "ts": time.time()})


def error(message: str) -> str:
    """An error frame; the connection stays open."""
    return encode({"type": "error", "error": message})


def parse(raw: str) -> dict[str, Any] | str:
    """Decode a client message: the JSON object, or an error description."""
    try:
        msg = json.loads(raw)
    except ValueError:
        return "invalid JSON"
    if not isinstance(msg, dict):
        return "message must be a JSON object"
    return msg


async def receive_loop(ws: WebSocket, limit: int, handle: Callable[[str], None]) -> str:
    """Feed each client message to `handle`; returns "disconnect" or "too big" when it stops."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return "disconnect"
        raw = message.get("text")
        if raw is None:
            raw = (message.get("bytes") or b"").decode("utf-8", "replace")
        # uvicorn enforces ws_max_size already; this covers servers that do not.
        if (len(raw) if raw.isascii() else len(raw.encode())) > limit:
            return "too big"
        handle(raw)


async def _close(ws: WebSocket, code: int, reason: str = "") -> None:
    # The peer may already be gone or not reading; either way there is nothing left to do.
    with contextlib.suppress(OSError, RuntimeError, TimeoutError, WebSocketDisconnect):
        await asyncio.wait_for(ws.close(code, reason), FINAL_CLOSE_TIMEOUT_S)


async def run_stream(
    ws: WebSocket, hub: Hub, sub: Subscriber, sender: Any, *, handle: Callable[[str], None], limit: int
) -> None:
    """Run a connection's sender and receiver until either ends, then close and clean up."""
    try:
        ended_by, result = await race(sender, receive_loop(ws, limit, handle), sub.wait_closed())
    finally:
        hub.disconnect(sub)
    if ended_by == 1 and result != "too big":
        return  # the client went away (or its socket failed): nothing left to send
    if ended_by == 1:
        await _close(ws, CLOSE_TOO_BIG, "message too big")
    elif sub.dropped:
        await _close(ws, CLOSE_POLICY, "slow consumer")
    elif hub.closing:
        await _close(ws, CLOSE_GOING_AWAY, "server shutting down")
    else:
        await _close(ws, CLOSE_ERROR)


def feed_text(event: Event, notify: bool) -> str:
    """What the feed writes for an event: the event itself, or in signalling mode only the news of it."""
    return event.notice_text() if notify else event.text


async def _feed_sender(
    ws: WebSocket, hub: Hub, sub: Subscriber, ch: Channel, replay: list[Event], notify: bool = False
) -> None:
    delivered = hub.metrics.delivered["ws"]
    # Every seq written on this connection: live events and resume replays may overlap.
    sent = SeqSet()
    for event in replay:
        await ws.send_text(feed_text(event, notify))
        sent.add(event.seq)
    delivered.inc(len(replay))
    while True:
        item = await sub.queue.get()
        if isinstance(item, Event):
            if item.seq not in sent:
                await ws.send_text(feed_text(item, notify))
                sent.add(item.seq)
                delivered.inc()
        elif isinstance(item, Resume):
            for event in ch.after(item.since):
                if event.seq not in sent:
                    await ws.send_text(feed_text(event, notify))
                    sent.add(event.seq)
                    delivered.inc()
        else:
            await ws.send_text(item)


async def _feed_sender_calibrated(
    ws: WebSocket, hub: Hub, sub: Subscriber, ch: Channel, replay: list[Event], cal: Calibration,
    notify: bool = False,
) -> None:
    """_feed_sender() under the calibration knobs: events written once delay old, faults applied.

    Replay, resume and live events go through the same per-connection rules. A seq is marked as
    sent when it is decided (written, dropped or held for a swap), so a resume never repeats it.
    """
    delivered = hub.metrics.delivered["ws"]
    injector = cal.injector("ws")
    delay = cal.delay
    sent = SeqSet()

    async def emit(event: Event) -> None:
        if event.seq in sent:
            return
        sent.add(event.seq)
        if delay > 0:
            await cal.wait_due(event)
        for item in injector.apply(event) if injector is not None else (event,):
            await ws.send_text(feed_text(item, notify))
            delivered.inc()

    for event in replay:
        await emit(event)
    while True:
        item = await sub.queue.get()
        if isinstance(item, Event):
            await emit(item)
        elif isinstance(item, Resume):
            for event in ch.after(item.since):
                await emit(event)
        else:
            await ws.send_text(item)


async def _chat_sender_delayed(ws: WebSocket, hub: Hub, sub: Subscriber, cal: Calibration) -> None:
    """_chat_sender() under --delay-ms: room messages and feed events written once delay old."""
    delivered = hub.metrics.delivered["chat"]
    while True:
        item = await sub.queue.get()
        if isinstance(item, Event):
            await cal.wait_due(item)
            await ws.send_text(item.text if item.kind == "room" else item.typed_text())
            delivered.inc()
        else:
            await ws.send_text(item)


async def _chat_sender(ws: WebSocket, hub: Hub, sub: Subscriber) -> None:
    delivered = hub.metrics.delivered["chat"]
    while True:
        item = await sub.queue.get()
        if isinstance(item, Event):
            await ws.send_text(item.text if item.kind == "room" else item.typed_text())
            delivered.inc()
        else:
            await ws.send_text(item)


async def admit(ws: WebSocket, hub: Hub, transport: str) -> Subscriber | None:
    """Accept a WebSocket and admit it as a `transport` stream, or close it when the hub is full."""
    await ws.accept()  # accept first so the client sees a proper close code
    sub = hub.connect(transport)
    if sub is None:
        await _close(ws, CLOSE_TRY_LATER, "too many connections")
    return sub


async def refuse(ws: WebSocket, code: int, reason: str) -> None:
    """Accept, then close at once with `code` and `reason`: a refused handshake (HTTP 403) would say neither."""
    await ws.accept()
    await _close(ws, code, reason)


def add_ws_routes(app: FastAPI, hub: Hub, config: TargetConfig, calibration: Calibration | None = None) -> None:
    """Register the /ws feed and /ws/chat endpoints on `app`."""
    limit = config.max_message_bytes
    cal = calibration if calibration is not None and calibration.active else None

    @app.websocket("/ws")
    async def ws_feed(
        ws: WebSocket,
        channel: ChannelParam = config.default_channel,
        since: Annotated[int | None, Query(description="Replay buffered events after this seq first.")] = None,
        notify: Annotated[bool, Query(description="Signalling: push only {type: changed, seq, ts}; fetch the data over REST.")] = False,
    ) -> None:
        """Push every event of a channel as a text frame (or only its notice); clients may resume or ping."""
        try:
            hub.channel(channel)  # before a stream slot is taken; channels are never freed
        except LimitReached as exc:
            await refuse(ws, CLOSE_POLICY, str(exc))
            return
        sub = await admit(ws, hub, "ws")
        if sub is None:
            return
        await hub.broker.sync(channel)  # then subscribed with no await in between: no gap, no overlap
        replay = hub.subscribe(sub, channel, since=since)

        def handle(raw: str) -> None:
            msg = parse(raw)
            if isinstance(msg, str):
                hub.send(sub, error(msg))
            elif msg.get("type") == "resume":
                since = msg.get("since")
                if isinstance(since, int) and not isinstance(since, bool):
                    hub.send(sub, Resume(since))
                else:
                    hub.send(sub, error("resume needs an integer 'since'"))
            elif msg.get("type") == "ping":
                hub.send(sub, pong())
            else:
                hub.send(sub, error(f"unknown message type {msg.get('type')!r}"))

        ch = hub.channel(channel)
        if cal is None:
            sender = _feed_sender(ws, hub, sub, ch, replay, notify)
        else:
            sender = _feed_sender_calibrated(ws, hub, sub, ch, replay, cal, notify)
        await run_stream(ws, hub, sub, sender, handle=handle, limit=limit)

    @app.websocket("/ws/chat")
    async def ws_chat(ws: WebSocket, room: RoomParam = "lobby") -> None:
        """Typed chat: chat, typing and presence broadcast to the room, optional channel feeds, ping/pong."""
        sub = await admit(ws, hub, "chat")
        if sub is None:
            return
        # Join before the welcome: once a client sees it, broadcasts must already reach it.
        # Queued broadcasts still follow the welcome, which is sent before the sender starts.
        try:
            hub.join(sub, room)
        except LimitReached as exc:
            hub.disconnect(sub)
            await _close(ws, CLOSE_POLICY, str(exc))
            return
        try:
            await ws.send_text(encode({"type": "welcome", "id": sub.id, "room": room}))
        except (OSError, WebSocketDisconnect):  # the client left before the welcome
            hub.disconnect(sub)
            return

        def handle(raw: str) -> None:
            msg = parse(raw)
            if isinstance(msg, str):
                hub.send(sub, error(msg))
                return
            kind = msg.get("type")
            if kind == "chat":
                if not isinstance(msg.get("text"), str):
                    hub.send(sub, error("chat needs a string 'text'"))
                    return
                # Server fields (seq, ts, room, type, from) override anything the client sent.
                hub.broker.say(room, {**msg, "type": "chat", "from": sub.id})
            elif kind in INDICATORS:
                # Typing and presence indicators: tiny, frequent, stamped and fanned out to the room like chat.
                hub.broker.say(room, {**msg, "type": kind, "from": sub.id})
            elif kind in ("subscribe", "unsubscribe"):
                name = msg.get("channel")
                if not isinstance(name, str) or not valid_name(name):
                    hub.send(sub, error(f"{kind} needs a valid 'channel'"))
                elif kind == "subscribe":
                    try:
                        hub.subscribe(sub, name)
                    except LimitReached as exc:  # the connection and its other subscriptions stay
                        hub.send(sub, error(str(exc)))
                        return
                    hub.send(sub, encode({"type": "subscribed", "channel": name, "seq": hub.channel(name).seq}))
                else:
                    hub.unsubscribe(sub, name)
                    hub.send(sub, encode({"type": "unsubscribed", "channel": name}))
            elif kind == "ping":
                hub.send(sub, pong())
            else:
                hub.send(sub, error(f"unknown message type {kind!r}"))

        if cal is not None and cal.delay > 0:  # faults do not apply to chat
            sender = _chat_sender_delayed(ws, hub, sub, cal)
        else:
            sender = _chat_sender(ws, hub, sub)
        await run_stream(ws, hub, sub, sender, handle=handle, limit=limit)
