"""Small asyncio helpers shared by the streaming endpoints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from starlette.websockets import WebSocketDisconnect

log = logging.getLogger("rtcap.target")

# Ways a stream normally ends: the peer went away or the task was cancelled.
_EXPECTED = (OSError, WebSocketDisconnect)


async def race(*aws: Awaitable[Any]) -> tuple[int, Any]:
    """Run `aws` concurrently until one finishes and cancel the others.

    Returns the index of the first to finish and its result (None if it raised).
    """
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        # Wait for the cancelled tasks so nothing outlives the connection, and retrieve
        # exceptions so asyncio does not report them as never retrieved.
        await asyncio.gather(*tasks, return_exceptions=True)
    index = min(i for i, task in enumerate(tasks) if task in done)
    first = tasks[index]
    if first.cancelled():
        return index, None
    exc = first.exception()
    if exc is not None:
        if not isinstance(exc, _EXPECTED):
            log.warning("stream task failed", exc_info=exc)
        return index, None
    return index, first.result()


async def wait_disconnect(receive: Any) -> None:
    """Consume ASGI HTTP messages until the client disconnects."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
