"""Polling viewers in real headless Locust runs on loopback: coordinated omission when the server stalls a
poll, full-state polling that repeats old events, and the application bytes polls receive."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import launch_reference
from tests.loadtests.locust_run import finish, subscribers

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 0.5
STALL_S = 2.75  # off the tick grid on purpose: the poll sent after the stall is then a quarter interval late

# Loaded next to the users: writes every request event with the monotonic time it was fired, so the test can
# tell from each GET's response time which tick it was charged from.
PROBE = '''
import json, os, time
from locust import events

_out = open(os.environ["RTCAP_TEST_PROBE"], "a", encoding="utf-8")


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception=None, **_kwargs):
    _out.write(json.dumps({"type": request_type, "name": name, "rt": response_time, "length": response_length,
                           "error": exception is not None, "at": time.monotonic()}) + "\\n")
    _out.flush()
'''


def start_users(host: str, user_class: str, users: int, seconds: int, record: Path, *extra: str) -> subprocess.Popen:
    """Headless Locust on loadtests/generator/catalog.py (every user class, StateUser included) plus the request probe."""
    record.mkdir(parents=True, exist_ok=True)
    probe = record / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    command = [
        sys.executable, "-m", "locust", "-f", f"{ROOT / 'loadtests' / 'generator' / 'catalog.py'},{probe}", "--headless",
        "--host", host, "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--only-summary",
        "--loglevel", "WARNING", "--csv", str(record / "locust"), "--rtcap-record", str(record), *extra, user_class,
    ]
    env = {**os.environ, "RTCAP_TEST_PROBE": str(record / "requests.jsonl")}
    return subprocess.Popen(command, stdout=(record / "locust.log").open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
                            env=env)


def probed(record: Path, request_type: str = "GET") -> list[dict]:
    """The request events the probe saw, of one request type, in the order they were fired."""
    lines = (record / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    return [event for event in map(json.loads, lines) if event["type"] == request_type]


class HTTPProxy:
    """A loopback proxy for keep-alive HTTP/1.1: counts responses and their body bytes (from Content-Length),
    can hold the response to the Nth request for `hold` seconds, as a stalled server would, and can stop
    forwarding requests after the `last_request`th, so that a run ends with no response in flight."""

    def __init__(self, target_host: str, target_port: int, stall_request: int = 0, hold: float = 0.0,
                 last_request: int = 0) -> None:
        self.target = (target_host, target_port)
        self.stall_request, self.hold, self.last_request = stall_request, hold, last_request
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests = 0
        self.responses = 0
        self.body_bytes = 0
        self.not_modified = 0
        self.request_at = 0.0  # monotonic time the stalled request passed the proxy
        self.released_at = 0.0  # monotonic time its held response was let go to the client
        self.released = threading.Event()
        self._armed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client), daemon=True).start()

    def _up(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                # The viewer writes each request head in one sendall: one GET per chunk on loopback.
                if data.startswith(b"GET "):
                    self.requests += 1
                    if self.requests == self.stall_request:
                        self.request_at = time.monotonic()
                        self._armed.set()  # before forwarding, so the response cannot overtake the arming
                if self.last_request and self.requests > self.last_request:
                    continue  # never answered: the viewer waits until Locust stops it
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._shutdown(source, sink)

    def _down(self, source: socket.socket, sink: socket.socket) -> None:
        pending = bytearray()
        try:
            while data := source.recv(65536):
                pending += data
                self._count_responses(pending)
                if self._armed.is_set() and not self.released.is_set():
                    time.sleep(self.hold)  # the stall under test, not a wait for something to happen
                    # Stamped before sending: the viewer (another process) may fire its event before we return.
                    self.released_at = time.monotonic()
                    sink.sendall(data)
                    self.released.set()
                    continue
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._shutdown(source, sink)

    def _count_responses(self, pending: bytearray) -> None:
        # An independent reading of the stream: each complete response's body length from its Content-Length.
        while (end := pending.find(b"\r\n\r\n")) >= 0:
            match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", bytes(pending[:end]))
            length = int(match.group(1)) if match else 0  # 304s and other bodiless answers
            if len(pending) < end + 4 + length:
                return
            self.responses += 1
            self.body_bytes += length
            self.not_modified += pending.startswith(b"HTTP/1.1 304")
            del pending[: end + 4 + length]

    @staticmethod
    def _shutdown(*sockets: socket.socket) -> None:
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self.listener.close()
        self._shutdown(*self._sockets)
        for sock in self._sockets:
            sock.close()


def _proxy_to(base_url: str, stall_request: int = 0, hold: float = 0.0, last_request: int = 0) -> HTTPProxy:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    return HTTPProxy(host, int(port), stall_request, hold, last_request)


def test_a_stalled_poll_charges_the_wait_from_the_intended_tick(reference_url: str, tmp_path: Path) -> None:
    proxy = _proxy_to(reference_url, stall_request=4, hold=STALL_S)
    try:
        run = start_users(proxy.url, "PollUser", 1, 8, tmp_path, "--poll-interval", str(INTERVAL))
        assert proxy.released.wait(timeout=30), "the fourth poll never reached the proxy"
        totals = finish(run, tmp_path)["poll"]
    finally:
        proxy.close()
    polls = probed(tmp_path)
    assert not any(poll["error"] for poll in polls)
    stalled_index = next(i for i, poll in enumerate(polls) if poll["at"] >= proxy.released_at)
    stalled, after = polls[stalled_index], polls[stalled_index + 1]
    # The stalled poll: charged at least the stall, and its tick came just before its request left.
    assert stalled["rt"] >= STALL_S * 1000
    tick0 = stalled["at"] - stalled["rt"] / 1000
    assert proxy.request_at - 0.1 <= tick0 <= proxy.request_at
    # Ticks after tick0 that came while the viewer waited: the latest is polled at once, the rest are skipped.
    inside = math.floor((proxy.released_at - tick0) / INTERVAL)
    assert inside == 5
    late_tick = tick0 + inside * INTERVAL
    after_tick = after["at"] - after["rt"] / 1000
    assert abs(after_tick - late_tick) < 0.03, "the poll after the stall is not charged from its own tick"
    assert after["rt"] >= (proxy.released_at - late_tick) * 1000 - 5  # about 250 ms of waiting, not ~1 ms
    assert totals["missed_ticks"] == inside - 1
    # Every poll is charged from a tick of one fixed schedule.
    for poll in polls:
        ticks = (poll["at"] - poll["rt"] / 1000 - tick0) / INTERVAL
        assert abs(ticks - round(ticks)) < 0.06, poll


@pytest.fixture(scope="module")
def state_target() -> Iterator[str]:
    """A reference target publishing 20 events/s whose /state holds the last 40 events."""
    target = launch_reference("--buffer", "40", rate=20, payload=64)
    yield target.adapter.base_url
    target.stop()


def test_state_viewer_reports_each_event_once_though_every_body_repeats_old_state(state_target: str,
                                                                                  tmp_path: Path) -> None:
    users, last = 4, 60  # 4 viewers at 5 polls/s: about 3 s of answers, then every poll hangs until the end
    # Locust kills a user mid-request when it stops (a response could pass the proxy and never be counted):
    # the proxy answers the first `last` polls only, so the run ends with no answer on its way.
    proxy = _proxy_to(state_target, last_request=last)
    try:
        run = start_users(proxy.url, "StateUser", users, 5, tmp_path, "--poll-interval", "0.2")
        totals = finish(run, tmp_path)["state"]
    finally:
        proxy.close()
    assert totals["errors"] == 0
    assert proxy.responses == last
    assert totals["delivered"] >= users * 20 * 2
    assert totals.get("lost", 0) == totals.get("duplicated", 0) == totals.get("reordered", 0) == 0
    subs = subscribers(tmp_path)
    assert len(subs) == users
    for sub in subs:
        assert sub["transport"] == "state" and sub["lost"] == sub["duplicated"] == 0
        assert sub["received"] == sub["highest"] - sub["first"] + 1  # every event once, none twice
    polls = probed(tmp_path)
    assert {poll["name"] for poll in polls} == {"/state"}
    assert proxy.responses == totals["requests"] == len(polls)
    # Application bytes are the bodies, counted by the proxy independently of the viewers.
    assert totals["payload_bytes"] == proxy.body_bytes == sum(poll["length"] for poll in polls)
    # Each body repeated far more than its few new events (a ~130-byte event, 4 new per poll, 40 held).
    assert totals["payload_bytes"] > 5 * 130 * totals["delivered"]
    assert totals["bytes_received"] > totals["payload_bytes"]  # heads are overhead on top of the bodies


def test_poll_viewer_counts_response_bodies_as_payload_bytes(state_target: str, tmp_path: Path) -> None:
    # Polling faster than the 20 events/s are published: many answers are 304 Not Modified, with no body.
    last = 150  # about 1.5 s of answers, then no response in flight when Locust stops (see the state test)
    proxy = _proxy_to(state_target, last_request=last)
    try:
        run = start_users(proxy.url, "PollUser", 2, 4, tmp_path, "--poll-interval", "0.02")
        totals = finish(run, tmp_path)["poll"]
    finally:
        proxy.close()
    assert totals["errors"] == 0
    assert proxy.not_modified > 0 and proxy.responses == totals["requests"] == last
    assert totals.get("payload_bytes", 0) == proxy.body_bytes
    assert totals["bytes_received"] > totals["payload_bytes"]
