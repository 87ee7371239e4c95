"""Start a fresh server from an adapter's `process.start` command, wait until it is ready, stop it after."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from targets.adapter import TargetAdapter


class LaunchError(RuntimeError):
    """The server did not start, or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return 200 <= response.status < 300
    except urllib.error.HTTPError:
        return False
    except OSError:
        return False


def _accepting(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class LaunchedTarget:
    """A server process rtcap started for one measurement, and the adapter that reaches it."""

    adapter: TargetAdapter
    process: subprocess.Popen
    command: list[str]
    log_path: Path | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """The started process's id (its children, if it forks, belong to the server too)."""
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> int | None:
        """Send the adapter's stop signal; kill after `timeout`; return the exit code."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(self.adapter.process.signal_number)
                try:
                    return self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    return self.process.wait(timeout)
            return self.process.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


def launch(adapter: TargetAdapter, rate: float, payload: int, log_path: Path | None = None) -> LaunchedTarget:
    """Start the adapter's server on a free loopback port and wait until it answers."""
    spec = adapter.process
    port = free_port()
    command = spec.render_start(port=port, rate=rate, payload=payload, channel=adapter.channel)
    ready = adapter.with_port(port)
    log = log_path.open("a", encoding="utf-8") if log_path else subprocess.DEVNULL
    try:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except OSError as error:
        if log_path:
            log.close()
        raise LaunchError(f"cannot start {command[0]!r}: {error}") from error
    launched = LaunchedTarget(ready, process, command, log_path, log if log_path else None)
    host, _, _ = ready.base_url.partition("://")[2].partition(":")
    deadline = time.monotonic() + spec.start_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            launched.stop()
            raise LaunchError(f"{' '.join(command)} exited with {process.returncode} before it was ready"
                              + (f"; see {log_path}" if log_path else ""))
        up = _ready(f"{ready.base_url}{spec.ready_url}") if spec.ready_url else _accepting(host.strip("[]") or "127.0.0.1", port)
        if up:
            return launched
        time.sleep(0.1)
    launched.stop()
    raise LaunchError(f"{' '.join(command)} was not ready within {spec.start_timeout:g} s"
                      + (f"; see {log_path}" if log_path else ""))
