"""The FastAPI application of the reference target: wiring, lifespan, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .access import AccessGuard, OriginPolicy
from .broker import Deployment
from .calibration import Calibration
from .config import TargetConfig
from .hub import Hub
from .metrics import Metrics
from .ndjson import add_ndjson_route
from .polling import add_polling_routes
from .rpc import add_rpc_routes
from .sse import add_sse_route
from .ticker import run_ticker
from .ws import add_ws_routes


WORKER_HEADER = b"x-rtcap-worker"


class WorkerHeader:
    """ASGI middleware naming the worker that answered (`X-Rtcap-Worker: <pid>`) on every HTTP response and
    WebSocket handshake, so a client can tell where its connection landed. Only with several workers: a single
    process sends byte-identical answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (WORKER_HEADER, str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def named(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, named)


def create_app(config: TargetConfig | None = None, deployment: Deployment | None = None) -> FastAPI:
    """Build a reference-target app with its own hub, ticker and metrics registry.

    `deployment` places it in a multi-worker deployment (broker, worker index); default: one process, memory broker.
    """
    config = config or TargetConfig()
    deployment = deployment or Deployment()
    metrics = Metrics()
    calibration = Calibration(config, metrics)
    hub = Hub(
        buffer=config.buffer,
        queue_size=config.queue_size,
        max_streams=config.max_connections,
        metrics=metrics,
        ballast=calibration.ballast,
        max_channels=config.max_channels,
        max_rooms=config.max_rooms,
        id_prefix=f"w{deployment.index}." if deployment.workers > 1 else "",
    )
    hub.broker = deployment.make_broker(hub)
    metrics.describe_worker(deployment.index, os.getpid(), hub.broker.kind)
    for name in config.channels:
        hub.channel(name)
    started = time.monotonic()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await hub.broker.start()  # a broker that cannot be reached fails the startup
        rate = config.rate if deployment.ticks else 0.0
        ticker = asyncio.create_task(run_ticker(hub, config.channels, rate, config.payload), name="rtcap-ticker")
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            hub.shutdown()
            await hub.broker.close()

    app = FastAPI(title="rtcap reference target", lifespan=lifespan)
    if deployment.workers > 1:
        app.add_middleware(WorkerHeader)
    app.add_middleware(
        AccessGuard,
        token=config.publish_token,
        origins=OriginPolicy(config.allowed_origins, loopback=config.loopback),
    )
    app.state.config = config
    app.state.hub = hub
    app.state.metrics = metrics
    app.state.calibration = calibration
    app.state.deployment = deployment

    @app.get("/healthz")
    async def healthz() -> Response:
        """Liveness, pid of the worker that answered, the broker, known channels and the calibration knobs."""
        body = {
            "status": "ok",
            "pid": os.getpid(),
            "worker": deployment.index,
            "workers": deployment.workers,
            "broker": hub.broker.describe(),
            "uptime_s": round(time.monotonic() - started, 3),
            "channels": list(hub.channels),
            "calibration": calibration.describe(hub.ballast_held()),
        }
        return Response(json.dumps(body), media_type="application/json")

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text exposition of this app's registry."""
        return Response(metrics.render(), media_type=metrics.content_type)

    add_polling_routes(app, hub, config, calibration)
    add_sse_route(app, hub, config, calibration)
    add_ndjson_route(app, hub, config, calibration)
    add_ws_routes(app, hub, config, calibration)
    add_rpc_routes(app, hub, config)
    return app
