"""Fixtures for the worked examples: third-party servers started by their serve.py on a free loopback port."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.targets.conftest import IO_TIMEOUT_S, ROOT, STARTUP_TIMEOUT_S

EXAMPLES = ROOT / "targets" / "examples"
EXIT_MISSING = 69  # what serve.py exits with when its server is not installed
LISTENING_RE = re.compile(
    r"^(?P<name>nchan|websocketd) example listening on http://(?P<host>[\d.]+):(?P<port>\d+) \(pid (?P<pid>\d+)\)$"
)
WORKER_RE = re.compile(r"^nchan example worker pid (?P<worker>\d+) holds the connections; prefix (?P<prefix>\S+)$")
PACKAGES = {"nchan": "nginx libnginx-mod-nchan", "websocketd": "websocketd"}


@pytest.fixture(scope="session", autouse=True)
def install_examples() -> None:
    """Install the examples' servers the way CI can (apt-get, via install.sh) before their tests run.

    A failed install is not an error here: each example's tests then skip, naming the packages to install.
    """
    subprocess.run(["bash", str(EXAMPLES / "install.sh")], capture_output=True, text=True, timeout=900, check=False)


@dataclass
class Example:
    """A running example server: its serve.py process and what its first lines said."""

    proc: subprocess.Popen[bytes]
    lines: list[str]
    stderr_path: str
    host: str = ""
    port: int = 0
    pid: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        match = LISTENING_RE.match(self.lines[0])
        assert match, f"unexpected listening line: {self.lines[0]!r}"
        self.host, self.port, self.pid = match["host"], int(match["port"]), int(match["pid"])
        for line in self.lines[1:]:
            worker = WORKER_RE.match(line)
            if worker:
                self.extra.update(worker.groupdict())

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def stderr(self) -> str:
        return Path(self.stderr_path).read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the launcher (it stops the server) and return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def finish(self) -> None:
        """Make sure everything is gone (after a test that may have failed half way)."""
        try:
            self.stop()
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()
            Path(self.stderr_path).unlink(missing_ok=True)


def launch(name: str, *args: str, lines: int = 1) -> Example:
    """Run `python -m rtcap.targets.examples.NAME.serve --port 0 ARGS`; skip the test if the server is not installed."""
    with tempfile.NamedTemporaryFile("w", prefix=f"rtcap-{name}-", suffix=".log", delete=False) as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"rtcap.targets.examples.{name}.serve", "--port", "0", *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            bufsize=0,
        )
    assert proc.stdout is not None
    # Read the raw pipe: a buffered readline() could hold the second line where select() cannot see it.
    fd = proc.stdout.fileno()
    pending = b""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while pending.count(b"\n") < lines:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            break
        pending += chunk
    got = pending.decode().splitlines()[:lines]
    if len(got) < lines:
        if proc.poll() is None:
            proc.terminate()  # let serve.py stop its server and remove its files
            try:
                proc.wait(IO_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
        code = proc.wait()
        message = Path(err.name).read_text(errors="replace").strip()
        Path(err.name).unlink(missing_ok=True)
        if code == EXIT_MISSING:
            pytest.skip(f"{message} (Debian packages: {PACKAGES[name]})")
        raise AssertionError(f"{name} example did not start (exit {code}): {message}")
    return Example(proc, got, err.name)


@pytest.fixture(scope="module")
def nchan() -> Iterator[Example]:
    """nginx + nchan on a free loopback port, shared by a test module."""
    example = launch("nchan", lines=2)
    yield example
    example.finish()


@pytest.fixture(scope="module")
def websocketd() -> Iterator[Example]:
    """websocketd + ticker.py at 10 ticks/s on a free loopback port, shared by a test module."""
    example = launch("websocketd", "--rate", "10")
    yield example
    example.finish()


@pytest.fixture
def start_example() -> Iterator[Callable[..., Example]]:
    """Factory for an extra example server owned by one test; all are stopped after it."""
    started: list[Example] = []

    def start(name: str, *args: str, lines: int = 1) -> Example:
        example = launch(name, *args, lines=lines)
        started.append(example)
        return example

    yield start
    for example in started:
        example.finish()


def wait_for(predicate: Callable[[], bool], timeout: float = IO_TIMEOUT_S, what: str = "condition") -> None:
    """Check `predicate` until it holds (checks, not sleeps, decide); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
