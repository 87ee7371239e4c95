"""One operation served twice: `GET /latest` (REST, with an ETag) and request/response over `/ws/rpc`.

The operation `get` returns a channel's latest event (or null). Over REST it is an ordinary keep-alive GET
with a status code, an `ETag` and `If-None-Match` -> 304; over the WebSocket it is a message
`{"type":"request","id":N,"op":"get"}` answered by `{"type":"response","id":N,"status":200,"result":...}`,
where the status, versioning and caching are whatever the application invents (here: a status field only).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.responses import Response

from .config import NAME_PATTERN, TargetConfig, valid_name
from .hub import Hub, LimitReached, Subscriber, encode
from .polling import etag_matches, too_many
from .ws import admit, error, parse, run_stream

ChannelParam = Annotated[str, Query(pattern=NAME_PATTERN, description="Channel name.")]


def latest_json(hub: Hub, channel: str) -> str:
    """The channel's latest event as JSON text, or `null` when nothing was published yet."""
    last = hub.channel(channel).last
    return "null" if last is None else last.text


def answer(hub: Hub, msg: dict[str, Any], channel: str) -> str:
    """The response to one request message (ops: get, echo); an error frame when it has no usable id."""
    request_id = msg.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        return error("request needs an integer or string 'id'")
    head = '{"type":"response","id":%s' % json.dumps(request_id)
    op = msg.get("op")
    target = msg.get("channel", channel)
    if op == "get" and isinstance(target, str) and valid_name(target):
        try:
            # Spliced, not re-serialised: the event's JSON is built once when it is published.
            return f'{head},"status":200,"result":{latest_json(hub, target)}}}'
        except LimitReached as exc:
            return f'{head},"status":429,"error":{encode(str(exc))}}}'
    if op == "echo":
        return f'{head},"status":200,"result":{encode(msg.get("data"))}}}'
    problem = f"unknown op {op!r}" if op not in ("get", "echo") else "get needs a valid 'channel'"
    return f'{head},"status":400,"error":{encode(problem)}}}'


async def _reply_sender(ws: WebSocket, sub: Subscriber) -> None:
    while True:
        await ws.send_text(await sub.queue.get())


def add_rpc_routes(app: FastAPI, hub: Hub, config: TargetConfig) -> None:
    """Register `GET /latest` and the `/ws/rpc` endpoint on `app`."""
    default = config.default_channel
    limit = config.max_message_bytes

    @app.get("/latest")
    async def latest(request: Request, channel: ChannelParam = default) -> Response:
        """The channel's latest event; `If-None-Match` with the current ETag gives 304 with no body."""
        refused = too_many(hub, channel)
        if refused is not None:
            return refused
        await hub.broker.sync(channel)
        ch = hub.channel(channel)
        headers = {"ETag": ch.etag, "Cache-Control": "no-cache"}  # intermediaries may keep it, but must revalidate
        if etag_matches(request.headers.get("if-none-match"), ch.etag):
            return Response(status_code=304, headers=headers)
        return Response(latest_json(hub, channel), media_type="application/json", headers=headers)

    @app.websocket("/ws/rpc")
    async def ws_rpc(ws: WebSocket, channel: ChannelParam = default) -> None:
        """Answer `{"type":"request","id":N,"op":...}` messages with `{"type":"response","id":N,...}`; ping/pong."""
        sub = await admit(ws, hub, "rpc")
        if sub is None:
            return

        def handle(raw: str) -> None:
            msg = parse(raw)
            if isinstance(msg, str):
                hub.send(sub, error(msg))
            elif msg.get("type") == "request":
                hub.send(sub, answer(hub, msg, channel))
            elif msg.get("type") == "ping":
                hub.send(sub, encode({"type": "pong"}))
            else:
                hub.send(sub, error(f"unknown message type {msg.get('type')!r}"))

        await run_stream(ws, hub, sub, _reply_sender(ws, sub), handle=handle, limit=limit)
