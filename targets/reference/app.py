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

from .access import AccessGuard, OriginPolicy
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


def create_app(config: TargetConfig | None = None) -> FastAPI:
    """Build a reference-target app with its own hub, ticker and metrics registry."""
    config = config or TargetConfig()
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
    )
    for name in config.channels:
        hub.channel(name)
    started = time.monotonic()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ticker = asyncio.create_task(run_ticker(hub, config.channels, config.rate, config.payload), name="rtcap-ticker")
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            hub.shutdown()

    app = FastAPI(title="rtcap reference target", lifespan=lifespan)
    app.add_middleware(
        AccessGuard,
        token=config.publish_token,
        origins=OriginPolicy(config.allowed_origins, loopback=config.loopback),
    )
    app.state.config = config
    app.state.hub = hub
    app.state.metrics = metrics
    app.state.calibration = calibration

    @app.get("/healthz")
    async def healthz() -> Response:
        """Liveness, pid (for resource sampling), known channels and the calibration knobs."""
        body = {
            "status": "ok",
            "pid": os.getpid(),
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
