"""Run the reference target under uvicorn: one process, clean signal handling (several: workers.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable, Generator

import uvicorn
from fastapi import FastAPI

from .app import create_app
from .config import TargetConfig
from .hub import Hub

# Open streams get this long to finish after SIGINT/SIGTERM before uvicorn cancels them.
GRACEFUL_SHUTDOWN_S = 2
LISTEN_BACKLOG = 4096


def listening_line(host: str, port: int, pid: int) -> str:
    """The line printed once the target accepts connections (the load tool parses the URL)."""
    shown = f"[{host}]" if ":" in host else host
    return f"rtcap reference target listening on http://{shown}:{port} (pid {pid})"


class ListenError(OSError):
    """The target could not bind or listen on the requested address."""


def bind_socket(host: str, port: int, *, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    """Bind a listening TCP socket ourselves, so port 0 resolves before the line is printed.

    `reuse_port`: SO_REUSEPORT, so that several worker processes each listen on the same port and the kernel
    spreads new connections over them; `listen=False` only holds the port (the deployment's reservation).
    """
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
            0
        ]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        if listen:
            sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def raise_fd_limit(wanted: int) -> None:
    """Lift the soft open-files limit toward `wanted` (each connection is one descriptor)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class ReferenceServer(uvicorn.Server):
    """uvicorn.Server that announces its address, ends streams at shutdown and exits 0 on signals."""

    def __init__(self, config: uvicorn.Config, hub: Hub, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._hub = hub
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then print the listening line."""
        await super().startup(sockets)
        if self.started:
            self._announce()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """End open streams first: uvicorn only tells the app after connections have drained."""
        self._hub.shutdown()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Route SIGINT/SIGTERM to a graceful exit without re-raising them afterwards.

        uvicorn re-raises the captured signal once shut down, which turns a requested stop
        into "killed by SIGTERM" or a KeyboardInterrupt traceback; for the target it is success.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(config: TargetConfig) -> None:
    """Serve the reference target until SIGINT/SIGTERM; raises ListenError if it cannot listen.

    With a shared broker the target is a deployment of worker processes (workers.py), even with one worker.
    """
    if config.broker_kind != "memory":
        from .workers import supervise

        supervise(config)
        return
    raise_fd_limit(config.max_connections + 256)
    sock = bind_socket(config.host, config.port)
    port = sock.getsockname()[1]
    try:
        run_app(create_app(config), config, sock,
                lambda: print(listening_line(config.host, port, os.getpid()), flush=True))
    finally:
        sock.close()


def run_app(app: FastAPI, config: TargetConfig, sock: socket.socket, announce: Callable[[], None]) -> bool:
    """Serve `app` on the listening `sock` until SIGINT/SIGTERM; `announce` once it accepts connections.

    Returns False if the app never started (its lifespan failed, e.g. an unreachable broker).
    """
    # Ping often enough that a dead peer is noticed within idle_timeout.
    ping = config.idle_timeout / 2
    uv_config = uvicorn.Config(
        app,
        loop="auto",
        http="auto",
        ws="auto",
        lifespan="on",
        log_level=config.log_level,
        access_log=False,
        timeout_keep_alive=config.idle_timeout,  # type: ignore[arg-type]  # uvicorn accepts floats
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ws_max_size=config.max_message_bytes,
        ws_ping_interval=ping,
        ws_ping_timeout=ping,
        # Compression would add per-subscriber CPU that no polling/SSE client pays.
        ws_per_message_deflate=False,
        backlog=LISTEN_BACKLOG,
    )
    server = ReferenceServer(uv_config, app.state.hub, announce=announce)
    server.run(sockets=[sock])
    return server.started
