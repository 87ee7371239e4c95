"""Start a fresh server from an adapter's `process.start` command, wait until it is ready, stop it after.

The server's stdout and stderr always go to a log file (the caller's, or a temporary one kept when the
server failed), because a server that does not come up is only explained by what it printed: a failed
start quotes the log's last lines and says what the last readiness probe got (a 502, a refused connection,
a redirect). Readiness probes never follow redirects: a 3xx from `ready_url` means something else answers
there (a proxy, a login page, another host), so it is "not ready", named with its Location.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rtcap.targets.adapter import TargetAdapter

LOG_TAIL_LINES = 20
"""Lines of the server's output quoted when it fails to start."""
PROBE_INTERVAL_S = 0.1
"""Pause between readiness probes (spent waiting for the process to exit, so an early exit shows at once)."""


class LaunchError(RuntimeError):
    """The server did not start, or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def probe_ready(url: str, timeout: float = 1.0) -> tuple[bool, str]:
    """(ready, what the probe got): a 2xx from `url` is ready; a redirect is not followed, and is not ready."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        response.read(1 << 16)
    except ConnectionRefusedError:
        return False, f"GET {url} was refused (nothing listening yet)"
    except (OSError, http.client.HTTPException) as error:
        return False, f"GET {url} failed: {error.__class__.__name__}: {error}"
    finally:
        conn.close()
    if 200 <= response.status < 300:
        return True, f"GET {url} answered {response.status}"
    if 300 <= response.status < 400:
        where = response.getheader("Location") or "nowhere (no Location header)"
        return False, f"GET {url} answered {response.status}: not ready: redirected to {where} (not followed)"
    return False, f"GET {url} answered {response.status} {response.reason}".rstrip()


def probe_port(host: str, port: int) -> tuple[bool, str]:
    """(ready, what the probe got): ready once the port accepts a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True, f"{host}:{port} accepted a connection"
    except ConnectionRefusedError:
        return False, f"{host}:{port} refused the connection (nothing listening yet)"
    except OSError as error:
        return False, f"connecting to {host}:{port} failed: {error}"


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file, or "" if there is none."""
    if path is None or not path.exists():
        return ""
    with path.open(encoding="utf-8", errors="replace") as log:
        return "".join(deque(log, maxlen=lines)).rstrip()


@dataclass
class LaunchedTarget:
    """A server process rtcap started for one measurement, and the adapter that reaches it."""

    adapter: TargetAdapter
    process: subprocess.Popen
    command: list[str]
    log_path: Path | None = None
    _log: Any = field(default=None, repr=False)
    _temporary_log: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        """The started process's id (its children, if it forks, belong to the server too)."""
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> int | None:
        """Send the adapter's stop signal; kill after `timeout`; return the exit code.

        A temporary log is removed when the server ran and stopped on request; one that exited by itself
        (crashed) keeps its log for whoever investigates."""
        exited_by_itself = self.process.poll() is not None
        try:
            if not exited_by_itself:
                self.process.send_signal(self.adapter.process.signal_number)
                try:
                    return self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    return self.process.wait(timeout)
            return self.process.returncode
        finally:
            # The server runs in its own session: whatever it forked and left behind goes with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            if self._log is not None:
                self._log.close()
                self._log = None
            if self._temporary_log and not exited_by_itself and self.log_path is not None:
                self.log_path.unlink(missing_ok=True)

    def failure(self, what: str) -> LaunchError:
        """A LaunchError saying `what` happened, with the last lines of the server's log."""
        tail = log_tail(self.log_path)
        shown = (f"\nlast {LOG_TAIL_LINES} lines of its output ({self.log_path}):\n{tail}" if tail
                 else f"\nit printed nothing (log: {self.log_path})")
        return LaunchError(f"{' '.join(self.command)} {what}{shown}")


def launch(adapter: TargetAdapter, rate: float, payload: int, log_path: Path | None = None) -> LaunchedTarget:
    """Start the adapter's server on a free loopback port and wait until it answers.

    Its output goes to `log_path` (appended), else to a temporary file named in any error."""
    spec = adapter.process
    port = free_port()
    command = spec.render_start(port=port, rate=rate, payload=payload, channel=adapter.channel)
    ready = adapter.with_port(port)
    temporary = log_path is None
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="rtcap-target-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    log = log_path.open("a", encoding="utf-8")
    try:
        # Its own session: a terminal's Ctrl-C reaches rtcap, which stops the server when it is done with it.
        # A publish token in rtcap's environment is not the started server's: it would refuse rtcap's publisher.
        env = {k: v for k, v in os.environ.items() if k != "RTCAP_PUBLISH_TOKEN"}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**env, "PYTHONUNBUFFERED": "1"})
    except OSError as error:
        log.close()
        if temporary:
            log_path.unlink(missing_ok=True)
        raise LaunchError(f"cannot start {command[0]!r}: {error}") from error
    launched = LaunchedTarget(ready, process, command, log_path, log, temporary)
    try:
        _wait_ready(launched, port)
    except LaunchError:
        launched._temporary_log = False  # the error names the log: keep it
        launched.stop()
        raise
    return launched


def _wait_ready(launched: LaunchedTarget, port: int) -> None:
    """Probe until the server is ready; LaunchError if it exits first or the start timeout passes."""
    spec, base_url, process = launched.adapter.process, launched.adapter.base_url, launched.process
    host = (urlsplit(base_url).hostname or "127.0.0.1").strip("[]")
    url = None
    if spec.ready_url:
        url = spec.ready_url if "://" in spec.ready_url else base_url + spec.ready_url
    deadline = time.monotonic() + spec.start_timeout
    last = "no probe answered yet"
    while True:
        if process.poll() is not None:
            raise launched.failure(f"exited with {process.returncode} before it was ready (last probe: {last})")
        up, last = probe_ready(url) if url else probe_port(host, port)
        if up:
            return
        if time.monotonic() >= deadline:
            raise launched.failure(f"was not ready within {spec.start_timeout:g} s: the last probe: {last}")
        try:
            process.wait(PROBE_INTERVAL_S)  # returns at once if the server exits
        except subprocess.TimeoutExpired:
            pass
