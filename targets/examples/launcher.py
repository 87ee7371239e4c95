"""Run one third-party server as a foreground child on 127.0.0.1, as the examples' serve.py need it."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

HOST = "127.0.0.1"
EXIT_MISSING = 69  # sysexits EX_UNAVAILABLE: the server is not installed
ATTEMPTS = 3  # a port picked by free_port() can be taken before the server binds it

try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


class Missing(RuntimeError):
    """A program or module the example needs is not installed."""


def missing(label: str, error: Missing) -> int:
    """Say on stderr what is not installed and return EXIT_MISSING."""
    print(f"{label}: {error}", file=sys.stderr, flush=True)
    return EXIT_MISSING


def free_port() -> int:
    """A loopback port that was free a moment ago (neither server can be told to pick one itself)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    # In the child before exec: if this launcher is killed outright, the kernel sends the server SIGTERM.
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def exit_status(code: int, stopping: bool) -> int:
    """This launcher's exit status for the server's return code, the shell's 128 + N for signal N."""
    if stopping and code == -signal.SIGTERM:
        return 0  # a server that does not catch SIGTERM dies of the one we forwarded: a clean stop
    return code if code >= 0 else 128 - code


class Child:
    """One server process listening on `port`, its output copied to our stderr."""

    def __init__(self, command: list[str], port: int) -> None:
        self.port = port
        self.address_in_use = False
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            # Our stdout carries only the lines we print; nginx logs to stderr, websocketd to stdout.
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches us only; we decide what the server gets
            preexec_fn=_die_with_parent,
        )
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        # Pass the server's log on, and notice when it lost the race for its port.
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace")
            if "address already in use" in line.lower():
                self.address_in_use = True
            sys.stderr.write(line)
            sys.stderr.flush()

    def wait_ready(self, ready: Callable[[int, int], bool], timeout: float) -> bool:
        """Poll `ready(pid, port)` until it holds; False if the server exited or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if ready(self.process.pid, self.port):
                return True
            time.sleep(0.02)
        return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the server, wait for it (killing it after `timeout`) and return its return code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        # What the server left in its session (nginx workers whose master was killed) goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._pump.join(timeout=2)
        return code


class Launcher:
    """Runs one server in the foreground; SIGTERM and SIGINT go on to it from construction on."""

    def __init__(self, label: str, program: str) -> None:
        self.label = label  # starts every line printed, e.g. "nchan example"
        self.program = program  # named when the server does not start
        self.stopping = False
        self.child: Child | None = None
        # Installed first, so a signal during set-up still lets the caller's clean-up run.
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)

    def _forward(self, _signum: int, _frame: object) -> None:
        self.stopping = True
        if self.child is not None and self.child.process.poll() is None:
            self.child.process.send_signal(signal.SIGTERM)

    def run(
        self,
        command: Callable[[int], list[str]],
        ready: Callable[[int, int], bool],
        *,
        port: int = 0,
        start_timeout: float = 15.0,
        announce: Callable[[int], None] | None = None,
    ) -> int:
        """Start `command(port)`, print the listening line once `ready(pid, port)`, wait; return the exit status."""
        # Only a port we picked may be swapped for another; `announce(pid)` prints lines after the listening one.
        attempts = 1 if port else ATTEMPTS
        for attempt in range(attempts):
            chosen = port or free_port()
            child = self.child = Child(command(chosen), chosen)
            if self.stopping:  # the signal came before there was a child to forward it to
                return exit_status(child.stop(), stopping=True)
            if child.wait_ready(ready, start_timeout):
                break
            code = child.stop()
            if self.stopping:
                return exit_status(code, stopping=True)
            if not (child.address_in_use and attempt + 1 < attempts):
                print(f"{self.label}: {self.program} did not start (exit status {code})", file=sys.stderr, flush=True)
                return code if code > 0 else 1
        print(f"{self.label} listening on http://{HOST}:{chosen} (pid {child.process.pid})", flush=True)
        if announce is not None:
            announce(child.process.pid)
        code = child.process.wait()
        child.stop()
        return exit_status(code, self.stopping)
