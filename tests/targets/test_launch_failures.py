"""Starting a target: what a failed start says (the last probe, the server's own output) and the log it keeps."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtcap.targets.adapter import TargetAdapter, adapter_from_dict
from rtcap.targets.launch import LaunchedTarget, LaunchError, launch

SERVER = r'''
"""Answers /healthz as told; prints some lines first, so the log has something to show."""
import argparse, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--mode", choices=["ok", "502", "redirect", "crash", "silent"], required=True)
args = parser.parse_args()
for n in range(1, 31):
    print(f"boot line-{n:02d}", file=sys.stderr if n % 2 else sys.stdout)
if args.mode == "crash":
    print("fatal: cannot open the database", file=sys.stderr)
    sys.exit(3)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz" and args.mode == "redirect":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{args.port}/ok")  # another host name, answering 200
        elif self.path == "/ok" or (self.path == "/healthz" and args.mode == "ok"):
            self.send_response(200)
        else:
            self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args):
        pass


if args.mode != "silent":
    HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
signal.pause()  # silent: alive, listening nowhere, until stopped
'''


def _adapter(script: Path, mode: str, start_timeout: float = 1.5) -> TargetAdapter:
    return adapter_from_dict({
        "name": f"launch-{mode}",
        "base_url": "http://127.0.0.1:{port}",
        "transports": {"sse": {"url": "/sse"}},
        "process": {"start": ["{python}", str(script), "--port", "{port}", "--mode", mode],
                    "ready_url": "/healthz", "start_timeout": start_timeout},
    })


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "launch_server.py"
    path.write_text(SERVER, encoding="utf-8")
    return path


@pytest.fixture
def started() -> Iterator[list[LaunchedTarget]]:
    """Targets a test launched successfully (by mistake, for the failure tests): stopped after it."""
    targets: list[LaunchedTarget] = []
    try:
        yield targets
    finally:
        for target in targets:
            target.stop()


def _launch_failure(adapter: TargetAdapter, started: list[LaunchedTarget], log_path: Path | None) -> str:
    try:
        started.append(launch(adapter, rate=1.0, payload=8, log_path=log_path))
    except LaunchError as error:
        return str(error)
    pytest.fail("the target was taken for ready")


def test_a_ready_url_answering_502_is_named_with_the_servers_last_output(script, started, tmp_path) -> None:
    log = tmp_path / "target.log"
    message = _launch_failure(_adapter(script, "502"), started, log)
    assert "was not ready within 1.5 s" in message
    assert re.search(r"the last probe: GET http://127\.0\.0\.1:\d+/healthz answered 502 Bad Gateway", message)
    # The last 20 lines of what it printed, stdout and stderr alike; not the earlier ones.
    assert "boot line-30" in message and "boot line-11" in message and "boot line-10" not in message
    assert f"({log})" in message and "boot line-01" in log.read_text()


def test_a_redirecting_ready_url_is_not_followed(script, started, tmp_path) -> None:
    message = _launch_failure(_adapter(script, "redirect"), started, tmp_path / "target.log")
    assert re.search(r"answered 302: not ready: redirected to http://localhost:\d+/ok \(not followed\)", message)


def test_a_server_listening_nowhere_is_named_as_refusing(script, started, tmp_path) -> None:
    message = _launch_failure(_adapter(script, "silent", start_timeout=1.0), started, tmp_path / "target.log")
    assert "was not ready within 1 s" in message and "was refused (nothing listening yet)" in message
    assert "boot line-30" in message


def test_an_early_exit_quotes_the_exit_code_and_the_error_it_printed(script, started) -> None:
    message = _launch_failure(_adapter(script, "crash", start_timeout=10), started, None)
    assert "exited with 3 before it was ready" in message
    assert message.rstrip().endswith("fatal: cannot open the database")
    kept = Path(re.search(r"lines of its output \((\S+)\)", message).group(1))
    try:
        assert "fatal: cannot open the database" in kept.read_text()  # the temporary log outlives the failure
    finally:
        kept.unlink(missing_ok=True)


def test_the_servers_output_is_always_logged(script, started) -> None:
    target = launch(_adapter(script, "ok"), rate=1.0, payload=8)
    started.append(target)
    assert target.log_path is not None and "boot line-30" in target.log_path.read_text()
    assert target.stop() is not None
    assert not target.log_path.exists()  # a temporary log of a clean run is not left behind
