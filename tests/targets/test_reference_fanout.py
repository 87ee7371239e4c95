"""Horizontal fan-out: the reference target as N worker processes on one port sharing Redis pub/sub.

Real processes only: a real redis-server (targets/redis_server.py), the target started as a subprocess with
`--workers 2`, real SSE/WebSocket/HTTP clients. Which worker answered is read from the X-Rtcap-Worker header,
so each test proves its connections landed on different workers.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from rtcap.loadtests.transports.seqtrack import SeqTracker
from rtcap.targets.redis_server import RedisServer
from tests.targets.conftest import IO_TIMEOUT_S, ROOT, SSEStream, Target

WORKER = "x-rtcap-worker"
LANDING_ATTEMPTS = 40  # new connections tried before concluding the kernel never spreads them (2^-39 by chance)


@pytest.fixture(scope="module", autouse=True)
def redis_installed() -> None:
    """Install redis-server the way CI does (targets/examples/install.sh); skip when that is impossible."""
    if shutil.which("redis-server") is None:
        subprocess.run(["bash", str(ROOT / "targets" / "examples" / "install.sh")], capture_output=True,
                       timeout=900, check=False)
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server: bash targets/examples/install.sh)")


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A private redis-server owned by one test (on a fixed port once started, so a test can restart it)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def fanout(start_target: Callable[..., Target], redis: RedisServer) -> Target:
    """Two workers sharing `redis`, no ticker (the tests publish)."""
    return start_target("--workers", "2", "--broker", redis.url, "--rate", "0", "--heartbeat", "0.5")


# ---------------------------------------------------------------- helpers


def wait_until(predicate: Callable[[], Any], timeout: float = IO_TIMEOUT_S, what: str = "condition") -> Any:
    """Check `predicate` until it returns something truthy (checks decide, not sleeps); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def publish(t: Target, channel: str, fields: dict[str, Any] | None = None) -> tuple[int, int, float]:
    """POST /publish on a fresh connection: (seq, worker pid that took it, ts)."""
    status, headers, body = t.request("POST", f"/publish?channel={channel}", body=json.dumps(fields or {}).encode())
    assert status == 200, (status, body)
    doc = json.loads(body)
    return doc["seq"], int(headers[WORKER]), doc["ts"]


def sse_on(t: Target, path: str, avoid: int | None = None, headers: dict[str, str] | None = None) -> tuple[SSEStream, int]:
    """An SSE stream on a worker other than `avoid` (any worker if None), and that worker's pid."""
    for _ in range(LANDING_ATTEMPTS):
        stream = t.sse(path, headers)
        assert stream.status == 200
        pid = int(stream.headers[WORKER])
        if pid != avoid:
            return stream, pid
        stream.close()
    raise AssertionError(f"no SSE connection landed on a worker other than {avoid}")


def ws_on(t: Target, path: str, avoid: int | None = None) -> tuple[Any, int]:
    """A WebSocket on a worker other than `avoid`, and that worker's pid."""
    for _ in range(LANDING_ATTEMPTS):
        ws = t.ws(path)
        pid = int(ws.getheaders()[WORKER])
        if pid != avoid:
            return ws, pid
        ws.close()
    raise AssertionError(f"no WebSocket landed on a worker other than {avoid}")


def ws_event(ws: Any) -> dict[str, Any]:
    """The next feed event of a /ws connection (control frames skipped)."""
    while True:
        msg = json.loads(ws.recv())
        if "seq" in msg:
            return msg


def publish_spread(t: Target, channel: str, n: int) -> list[tuple[int, int, float]]:
    """Publish `n` events alternately through one kept-alive connection per worker, so both workers take some.

    Fresh connections are spread by the kernel's SO_REUSEPORT hash, which can put five in a row on one worker;
    each connection here is first placed (GET /healthz names the worker) and then reused.
    """
    conns: dict[int, http.client.HTTPConnection] = {}
    try:
        for _ in range(LANDING_ATTEMPTS):
            conn = http.client.HTTPConnection(t.host, t.port, timeout=IO_TIMEOUT_S)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            pid = int(response.headers[WORKER])
            if pid in conns:
                conn.close()
            else:
                conns[pid] = conn
            if len(conns) == 2:
                break
        assert len(conns) == 2, "no connection landed on the second worker"
        published = []
        for i in range(n):
            pid, conn = list(conns.items())[i % 2]
            conn.request("POST", f"/publish?channel={channel}", body=json.dumps({"n": i}).encode())
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200, (response.status, body)
            assert int(response.headers[WORKER]) == pid
            doc = json.loads(body)
            published.append((doc["seq"], pid, doc["ts"]))
        return published
    finally:
        for conn in conns.values():
            conn.close()


def worker_pids(t: Target) -> set[int]:
    return {child.pid for child in psutil.Process(t.pid).children() if "workers" in " ".join(child.cmdline())}


# ---------------------------------------------------------------- command line


def test_several_workers_need_a_shared_broker() -> None:
    done = subprocess.run([sys.executable, "-m", "rtcap.targets.reference", "--port", "0", "--workers", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "--workers 2 needs a broker the workers share: add --broker redis" in lines[0], lines


# ---------------------------------------------------------------- one deployment, one sequence


def test_a_publish_on_one_worker_reaches_sse_and_ws_subscribers_on_the_other(fanout: Target, channel: str) -> None:
    stream, sse_pid = sse_on(fanout, f"/sse?channel={channel}")
    ws, ws_pid = ws_on(fanout, f"/ws?channel={channel}", avoid=sse_pid)
    try:
        assert sse_pid != ws_pid and {sse_pid, ws_pid} == worker_pids(fanout)
        published = publish_spread(fanout, channel, 20)
        # One sequence for the deployment: strictly +1 whichever worker took the publish.
        assert [seq for seq, _, _ in published] == list(range(1, 21))
        seen_sse = [stream.next_event()["event"] for _ in published]
        seen_ws = [ws_event(ws) for _ in published]
        assert [e["seq"] for e in seen_sse] == [e["seq"] for e in seen_ws] == list(range(1, 21))
        assert [e["n"] for e in seen_sse] == list(range(20))
        assert seen_sse == seen_ws  # the same event JSON on every worker (built once, in Redis)
        assert [e["ts"] for e in seen_sse] == [ts for _, _, ts in published]
    finally:
        stream.close()
        ws.close()


def test_chat_reaches_room_members_on_every_worker(fanout: Target) -> None:
    first, first_pid = ws_on(fanout, "/ws/chat?room=fan")
    second, _ = ws_on(fanout, "/ws/chat?room=fan", avoid=first_pid)
    try:
        ids = [json.loads(ws.recv())["id"] for ws in (first, second)]
        assert ids[0] != ids[1]  # connection ids stay unique across workers
        first.send(json.dumps({"type": "chat", "text": "hello"}))
        second.send(json.dumps({"type": "chat", "text": "back"}))
        for ws in (first, second):
            got = [json.loads(ws.recv()) for _ in range(2)]
            assert sorted(m["seq"] for m in got) == [1, 2]  # one room sequence for the deployment
            assert {m["from"]: m["text"] for m in got} == {ids[0]: "hello", ids[1]: "back"}
    finally:
        first.close()
        second.close()


def test_last_event_id_replays_on_a_worker_that_never_had_the_connection(fanout: Target, channel: str) -> None:
    stream, first_pid = sse_on(fanout, f"/sse?channel={channel}")
    try:
        publish_spread(fanout, channel, 10)
        assert [stream.next_event()["id"] for _ in range(5)] == [1, 2, 3, 4, 5]
    finally:
        stream.close()
    again, second_pid = sse_on(fanout, f"/sse?channel={channel}", avoid=first_pid, headers={"Last-Event-ID": "5"})
    try:
        assert second_pid != first_pid
        assert [again.next_event()["id"] for _ in range(5)] == [6, 7, 8, 9, 10]
        assert publish(fanout, channel)[0] == 11
        assert again.next_event()["id"] == 11  # replay, then live, with no gap and no overlap
    finally:
        again.close()
    # The ws feed resumes the same way on either worker.
    ws, _ = ws_on(fanout, f"/ws?channel={channel}&since=8", avoid=second_pid)
    try:
        assert [ws_event(ws)["seq"] for _ in range(3)] == [9, 10, 11]
    finally:
        ws.close()


def test_poll_since_answers_the_same_whichever_worker_answers(fanout: Target, channel: str) -> None:
    publish_spread(fanout, channel, 12)
    answers: dict[int, tuple[bytes, str]] = {}

    def both_answered() -> bool:
        status, headers, body = fanout.request("GET", f"/poll?channel={channel}&since=4")
        assert status == 200
        answers[int(headers[WORKER])] = (body, headers["etag"])
        return len(answers) == 2

    wait_until(both_answered, what="a poll answered by each worker")
    (body, etag), other = answers.values()
    assert other == (body, etag)
    assert [e["seq"] for e in json.loads(body)["events"]] == list(range(5, 13))
    assert etag == f'"{channel}:12"'


# ---------------------------------------------------------------- calibration across workers


def test_drop_injection_through_two_workers_is_detected_exactly(start_target: Callable[..., Target],
                                                                 redis: RedisServer, channel: str) -> None:
    t = start_target("--workers", "2", "--broker", redis.url, "--rate", "0", "--drop-every", "10")
    stream, sse_pid = sse_on(t, f"/sse?channel={channel}")
    ws, ws_pid = ws_on(t, f"/ws?channel={channel}", avoid=sse_pid)
    try:
        published = publish_spread(t, channel, 101)
        assert [seq for seq, _, _ in published] == list(range(1, 102))
        expected = [s for s in range(1, 102) if s % 10]
        trackers = {"sse": SeqTracker(), "ws": SeqTracker()}
        for _ in expected:
            got = stream.next_event()["event"]
            trackers["sse"].feed(got["seq"], got["ts"])
            got = ws_event(ws)
            trackers["ws"].feed(got["seq"], got["ts"])
        for name, tracker in trackers.items():
            # 10, 20, ..., 100 never written: exactly 10 lost, nothing duplicated or reordered, on both workers.
            assert (tracker.lost, tracker.duplicated, tracker.reordered, tracker.received) == (10, 0, 0, 91), name
            assert tracker.highest == 101, name
    finally:
        stream.close()
        ws.close()


# ---------------------------------------------------------------- Redis going away


def test_redis_restart_mid_stream_delivery_resumes(fanout: Target, redis: RedisServer, channel: str) -> None:
    stream, sse_pid = sse_on(fanout, f"/sse?channel={channel}")
    ws, _ = ws_on(fanout, f"/ws?channel={channel}", avoid=sse_pid)
    try:
        publish_spread(fanout, channel, 5)
        assert [stream.next_event()["id"] for _ in range(5)] == [1, 2, 3, 4, 5]
        assert [ws_event(ws)["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]
        port = redis.port
        redis.stop()
        # Nothing can be published: 503 from every worker, and the workers stay up, serving their copies.
        status, _, body = fanout.request("POST", f"/publish?channel={channel}", body=b"{}")
        assert status == 503 and b"redis unavailable" in body
        for _ in range(4):
            assert fanout.get_json(f"/poll?channel={channel}&since=0")["seq"] == 5
        restarted = time.monotonic()
        redis.port = port
        redis.start()  # empty: no persistence

        def published() -> bool:
            status, _, _ = fanout.request("POST", f"/publish?channel={channel}", body=b"{}")
            return status == 200

        wait_until(published, timeout=10, what="a publish after redis came back")
        accepted = time.monotonic()
        # The sequence continues instead of restarting at 1 (no subscriber sees a reset), on both workers.
        assert stream.next_event()["id"] == 6 and ws_event(ws)["seq"] == 6
        delivered = time.monotonic()
        assert publish(fanout, channel)[0] == 7
        assert stream.next_event()["id"] == 7 and ws_event(ws)["seq"] == 7
        print(f"redis back -> publish accepted {accepted - restarted:.3f} s, delivered {delivered - restarted:.3f} s")
        assert fanout.proc.poll() is None
        # Replay after the restart: Redis lost its lists, each worker's copy did not.
        again, _ = sse_on(fanout, f"/sse?channel={channel}", avoid=sse_pid, headers={"Last-Event-ID": "2"})
        try:
            assert [again.next_event()["id"] for _ in range(5)] == [3, 4, 5, 6, 7]
        finally:
            again.close()
    finally:
        stream.close()
        ws.close()


# ---------------------------------------------------------------- processes


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_worker_and_the_started_redis(start_target: Callable[..., Target], sig: int) -> None:
    t = start_target("--workers", "2", "--broker", "redis", "--rate", "50")
    children = psutil.Process(t.pid).children()
    names = sorted(child.name() for child in children)
    assert len(children) == 3 and names.count("redis-server") == 1, names
    assert len(worker_pids(t)) == 2
    # The ticker runs once per deployment: worker 0 publishes every tick, worker 1 none.
    published: dict[int, float] = {}

    def both_scraped() -> bool:
        status, headers, body = t.request("GET", "/metrics")
        assert status == 200
        lines = [line for line in body.decode().splitlines()
                 if line.startswith('rtcap_events_published_total{channel="live"}')]
        published[int(headers[WORKER])] = float(lines[0].split()[-1]) if lines else 0.0  # absent: never published
        return len(published) == 2 and max(published.values()) >= 10

    wait_until(both_scraped, what="/metrics from each worker after 10 ticks")
    assert sorted(published.values())[0] == 0, published
    assert t.stop(sig) == 0
    gone, alive = psutil.wait_procs(children, timeout=IO_TIMEOUT_S)
    assert not alive, alive
    assert "Traceback" not in t.stderr()
