"""Fixtures for the reference-target tests: real servers on loopback, real clients."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]

LISTENING_RE = re.compile(r"^rtcap reference target listening on http://(\S+):(\d+) \(pid (\d+)\)$")
STARTUP_TIMEOUT_S = 15.0
IO_TIMEOUT_S = 5.0


class SSEStream:
    """A blocking SSE client over http.client that parses one event block at a time."""

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self.conn = conn
        self.response = response
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}

    def next_block(self) -> dict[str, Any]:
        """Read the next block (up to a blank line): {"fields": {...}, "comments": [...], "raw": str}."""
        fields: dict[str, str] = {}
        comments: list[str] = []
        raw: list[str] = []
        while True:
            line = self.response.readline()
            if not line:
                raise EOFError("SSE stream ended")
            text = line.decode().rstrip("\n")
            raw.append(text)
            if text == "":
                if fields or comments:
                    return {"fields": fields, "comments": comments, "raw": "\n".join(raw[:-1])}
                raw.clear()
                continue
            if text.startswith(":"):
                comments.append(text[1:].strip())
                continue
            name, _, value = text.partition(":")
            fields[name] = value.removeprefix(" ")

    def next_event(self) -> dict[str, Any]:
        """Skip heartbeats/retry blocks and return the next data event as {"id": int, "event": dict}."""
        while True:
            block = self.next_block()
            if "data" in block["fields"]:
                return {"id": int(block["fields"]["id"]), "event": json.loads(block["fields"]["data"])}

    def close(self) -> None:
        """Drop the connection."""
        self.conn.close()


class Target:
    """A reference target running as a subprocess, with small real-client helpers."""

    def __init__(self, proc: subprocess.Popen[str], line: str, stderr_path: str) -> None:
        match = LISTENING_RE.match(line)
        assert match, f"unexpected listening line: {line!r}"
        self.proc = proc
        self.line = line
        self.host = match.group(1)
        self.port = int(match.group(2))
        self.pid = int(match.group(3))
        self.url = f"http://{self.host}:{self.port}"
        self.ws_url = f"ws://{self.host}:{self.port}"
        self.stderr_path = stderr_path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = IO_TIMEOUT_S,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request on a fresh connection: (status, lower-cased headers, body)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def get_json(self, path: str, **kwargs: Any) -> Any:
        """GET `path` and decode its JSON body (asserting 200)."""
        status, _, body = self.request("GET", path, **kwargs)
        assert status == 200, (status, body)
        return json.loads(body)

    def publish(self, channel: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /publish and return {"seq", "ts"}."""
        body = json.dumps(fields).encode() if fields is not None else None
        status, _, data = self.request("POST", f"/publish?channel={channel}", body=body)
        assert status == 200, (status, data)
        return json.loads(data)

    def metric(self, name: str, **labels: str) -> float | None:
        """Value of sample `name` with exactly these labels, from a fresh /metrics scrape."""
        status, _, body = self.request("GET", "/metrics")
        assert status == 200
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return None

    def wait_metric(
        self, name: str, predicate: Callable[[float], bool], timeout: float = IO_TIMEOUT_S, **labels: str
    ) -> float:
        """Scrape until `predicate(value)` holds; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.metric(name, **labels)
            if value is not None and predicate(value):
                return value
            time.sleep(0.02)
        raise AssertionError(f"{name}{labels} never satisfied the condition (last value {value})")

    def sse(self, path: str, headers: dict[str, str] | None = None) -> SSEStream:
        """Open an SSE stream (the caller closes it)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=IO_TIMEOUT_S)
        conn.request("GET", path, headers=headers or {})
        return SSEStream(conn, conn.getresponse())

    def ws(self, path: str) -> websocket.WebSocket:
        """Open a WebSocket (the caller closes it)."""
        return websocket.create_connection(self.ws_url + path, timeout=IO_TIMEOUT_S)

    def stderr(self) -> str:
        """What the server wrote to stderr so far."""
        return Path(self.stderr_path).read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the server and wait for it; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def launch(*args: str) -> Target:
    """Start `python -m rtcap.targets.reference --port 0 ARGS` and wait for its listening line."""
    # stderr goes to a file: a pipe nobody reads could fill up and stall the server.
    with tempfile.NamedTemporaryFile("w", prefix="rtcap-target-", suffix=".log", delete=False) as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtcap.targets.reference", "--port", "0", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], STARTUP_TIMEOUT_S)
    line = proc.stdout.readline().strip() if ready else ""
    if not line:
        proc.kill()
        proc.wait()
        raise AssertionError(f"target did not start: {Path(err.name).read_text()}")
    return Target(proc, line, err.name)


def _finish(target: Target) -> None:
    if target.proc.poll() is None:
        target.proc.kill()
    target.proc.wait()
    if target.proc.stdout:
        target.proc.stdout.close()
    Path(target.stderr_path).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    """The shared reference target: ticker at 20/s on "live", small buffer, fast heartbeat."""
    t = launch("--rate", "20", "--payload", "32", "--buffer", "50", "--heartbeat", "0.5")
    yield t
    _finish(t)


@pytest.fixture
def start_target() -> Iterator[Callable[..., Target]]:
    """Factory for extra targets with custom flags; all are killed after the test."""
    started: list[Target] = []

    def start(*args: str) -> Target:
        t = launch(*args)
        started.append(t)
        return t

    yield start
    for t in started:
        _finish(t)


@pytest.fixture
def channel(request: pytest.FixtureRequest) -> str:
    """A channel name unique to the test, so tests sharing a server do not interfere."""
    return re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:100] + f"-{time.monotonic_ns() % 10**9}"
