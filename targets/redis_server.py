"""A private redis-server on a free loopback port: started for a deployment, stopped with it.

`with RedisServer() as redis: ... redis.url` runs Debian's `redis-server` bound to 127.0.0.1 with no
persistence (`--save '' --appendonly no`, its working directory a temporary one), so every start is empty and
nothing is left behind. The process is stopped by whoever started it (SIGTERM, then SIGKILL), on every exit
path of the `with` block; on Linux it also gets SIGTERM if the starting thread dies without stopping it.
It runs in its own session, so a terminal's Ctrl-C reaches the workers that drain into it, not the broker
itself. Standard library only: the run orchestrator can start and sample it without the redis client.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from rtcap.targets.launch import free_port, log_tail

BINARY = "redis-server"
INSTALL_HINT = "install the Debian package redis-server (bash targets/examples/install.sh installs it)"
HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
PROBE_INTERVAL_S = 0.02
PORT_ATTEMPTS = 3  # a free port can be taken between picking it and redis binding it
PR_SET_PDEATHSIG = 1


class RedisServerError(RuntimeError):
    """redis-server is not installed, or did not start."""


def parent_death_signal() -> Callable[[], object] | None:
    """A preexec function asking Linux to SIGTERM the child when the starting thread dies (None elsewhere).

    libc is resolved here, before the fork: the function then runs nothing but one system call in the child.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a Redis server answers PING on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process; `port=0` picks a free loopback port (fixed ports let a test restart it)."""

    def __init__(self, port: int = 0, binary: str = BINARY) -> None:
        self.port = port
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0 of the running server."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def log_path(self) -> Path | None:
        """Where redis-server writes its log (inside its temporary directory)."""
        return Path(self._dir.name) / "redis.log" if self._dir is not None else None

    def start(self) -> RedisServer:
        """Start redis-server and wait until it answers PING; RedisServerError if it cannot."""
        if self.proc is not None:
            raise RedisServerError("this redis-server is already running")
        binary = shutil.which(self.binary)
        if binary is None:
            raise RedisServerError(f"{self.binary} not found: {INSTALL_HINT}")
        fixed = self.port != 0
        failure = ""
        for _ in range(1 if fixed else PORT_ATTEMPTS):
            port = self.port if fixed else free_port(HOST)
            failure = self._launch(binary, port)
            if not failure:
                self.port = port
                return self
        raise RedisServerError(failure)

    def _launch(self, binary: str, port: int) -> str:
        """Run redis-server on `port`; "" once it answers, else why not (the process is then gone)."""
        self._dir = tempfile.TemporaryDirectory(prefix="rtcap-redis-")
        log = self.log_path
        assert log is not None
        command = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                   "--protected-mode", "yes", "--daemonize", "no", "--dir", self._dir.name,
                   "--logfile", str(log), "--loglevel", "warning"]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=parent_death_signal())
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ping(HOST, port):
                return ""
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(PROBE_INTERVAL_S)  # an early exit shows at once
                why = f"redis-server exited with {code} on port {port}: {log_tail(log, 5) or '(no log)'}"
                self._cleanup()
                return why
        self.stop()
        return f"redis-server did not answer PING on {HOST}:{port} within {START_TIMEOUT_S:g} s"

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; returns the exit status (None if it was not running)."""
        proc, code = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        self._cleanup()
        return code

    def _cleanup(self) -> None:
        self.proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
