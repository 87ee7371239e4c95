"""Start and stop a target server process, and learn its URL from the line it prints when it listens."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

LISTENING = re.compile(r"listening on (https?://[^\s]+)")


class TargetStartError(RuntimeError):
    """The target process exited or said nothing usable before the start timeout."""


@dataclass
class TargetProcess:
    """A server under test started as a child process; stopped with SIGTERM, then SIGKILL."""

    command: list[str]
    log_path: Path | None = None
    start_timeout: float = 20.0
    process: subprocess.Popen | None = None
    url: str = ""
    _tail: deque = field(default_factory=lambda: deque(maxlen=40))

    @classmethod
    def reference(cls, rate: float, payload: int, log_path: Path | None = None, extra: list[str] | None = None) -> "TargetProcess":
        """The bundled reference target on a free loopback port."""
        command = [sys.executable, "-m", "targets.reference", "--host", "127.0.0.1", "--port", "0",
                   "--rate", str(rate), "--payload", str(payload), *(extra or [])]
        return cls(command, log_path)

    @property
    def pid(self) -> int:
        """The process id (after start)."""
        assert self.process is not None, "start() first"
        return self.process.pid

    def start(self) -> str:
        """Start the process and wait for its listening line; return the URL it serves."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        found = threading.Event()
        threading.Thread(target=self._pump, args=(found,), daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while not found.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                output = "\n".join(self._tail) or "(no output)"
                raise TargetStartError(f"target did not start: {' '.join(self.command)}\n{output}")
        return self.url

    def _pump(self, found: threading.Event) -> None:
        # Keep reading the output so the child never blocks on a full pipe; copy it to the log.
        assert self.process is not None and self.process.stdout is not None
        log = self.log_path.open("a", encoding="utf-8") if self.log_path else None
        try:
            for line in self.process.stdout:
                self._tail.append(line.rstrip())
                if log:
                    log.write(line)
                    log.flush()
                match = LISTENING.search(line)
                if match and not found.is_set():
                    self.url = match.group(1).rstrip("/")
                    found.set()
        finally:
            if log:
                log.close()

    def stop(self, timeout: float = 10.0) -> int | None:
        """Ask the process to stop (SIGTERM), kill it if it does not; return its exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)
