"""A broker outage injected on purpose while a run measures: Redis stopped mid-step, restarted empty on its port.

The fan-out scenario's `redis-restart` arm runs the reference target with `--broker redis://...` pointing at a
redis-server this module owns (targets/redis_server.py), so it can stop and restart it while the workers keep
serving. For each transport of the arm, once the step shape has finished `after_windows` measurement windows,
it waits `lead_s` (the next step's ramp and settle, so the outage falls inside a measurement window), stops
Redis, keeps it down `down_s` seconds, starts it again, empty, on the same port, and times how long until every
worker's bus subscription is back (Redis's count of pub/sub clients returns to what it was). Each outage is one line of
`outages.jsonl` in the arm's run directory (reports/schema.py OUTAGES_FILE); reports/outages.py reads it with
the clients' timeline: seconds without deliveries, when delivery resumed, what subscribers lost.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from rtcap.reports import schema
from rtcap.targets.redis_server import HOST, RedisServer, RedisServerError

POLL_S = 0.05
RECONNECT_TIMEOUT_S = 20.0


def redis_subscribers(port: int, timeout: float = 0.5) -> int | None:
    """Pub/sub clients of the Redis on `port` (each worker's bus reader is one), None when it does not answer."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"CLIENT LIST TYPE pubsub\r\n")
            data = b""
            while b"\r\n" not in data or len(data) < _bulk_end(data):
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                data += chunk
    except (OSError, ValueError):
        return None
    body = data[data.index(b"\r\n") + 2:_bulk_end(data) - 2]
    return sum(1 for line in body.splitlines() if line.strip())


def _bulk_end(data: bytes) -> int:
    """Where a RESP bulk string ("$N\\r\\n" + N bytes + "\\r\\n") ends; ValueError for an error reply."""
    head = data[:data.index(b"\r\n")]
    if not head.startswith(b"$"):
        raise ValueError(head.decode(errors="replace"))
    return len(head) + 2 + int(head[1:]) + 2


class RedisOutage:
    """Owns a redis-server for one arm and stops it once per transport, mid-run (a context manager)."""

    def __init__(self, run_dir: Path, transports: list[str], after_windows: int = 1, lead_s: float = 3.0,
                 down_s: float = 2.0) -> None:
        self.run_dir = run_dir
        self.transports = transports
        self.after_windows = after_windows
        self.lead_s = lead_s
        self.down_s = down_s
        self.redis = RedisServer()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtcap-outage", daemon=True)

    @property
    def url(self) -> str:
        """The broker URL the arm's targets are started with."""
        return self.redis.url

    def __enter__(self) -> RedisOutage:
        self.redis.start()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=RECONNECT_TIMEOUT_S + self.down_s + 5)
        self.redis.stop()

    def _windows(self, transport: str) -> int:
        path = self.run_dir / "locust" / transport / schema.WINDOWS_FILE
        return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0

    def _run(self) -> None:
        for transport in self.transports:
            while self._windows(transport) < self.after_windows:
                if self._stop.wait(POLL_S):
                    return
            if self._stop.wait(self.lead_s):
                return
            try:
                line = self._outage(transport)
            except (RedisServerError, OSError) as error:
                self.errors.append(f"{transport}: {error}")
                line = {"transport": transport, "error": str(error)}
            with (self.run_dir / schema.OUTAGES_FILE).open("a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")
        # Stay alive until the arm ends: Linux SIGTERMs the restarted redis-server when the thread that started
        # it exits (targets/redis_server.py parent_death_signal), which would end the arm's broker for good.
        self._stop.wait()

    def _outage(self, transport: str) -> dict[str, Any]:
        """Stop Redis, keep it down, restart it on its port; the times, and when every worker was back."""
        port = self.redis.port
        clients = redis_subscribers(port)
        down = time.time()
        self.redis.stop()
        self._stop.wait(self.down_s)  # the outage itself: a duration, not a wait for a condition
        self.redis.port = port
        self.redis.start()  # empty: no persistence
        up = time.time()
        back = None
        deadline = time.monotonic() + RECONNECT_TIMEOUT_S
        while time.monotonic() < deadline and not self._stop.is_set():
            now = redis_subscribers(port)
            if clients is not None and now is not None and now >= clients:
                back = time.time()
                break
            time.sleep(POLL_S)
        return {"transport": transport, "t_down": down, "t_up": up, "t_reconnected": back,
                "broker_clients": clients, "down_s": up - down}


AFTER_S = 5.0
"""Seconds after delivery resumed still charged to the outage (late duplicates, resumes)."""


def outage_effects(run_dir: Path, outage: dict[str, Any]) -> dict[str, Any]:
    """What the clients of one transport saw of one outage, from their per-second timeline: seconds without a
    delivery, when delivery resumed (whole seconds: an upper bound), and the events lost, duplicated and
    reordered from the outage until AFTER_S after delivery resumed, the (re)connects until it resumed; plus the
    step it hit."""
    from rtcap.loadtests.run.collect import read_jsonl, read_seconds

    transport, down, up = outage["transport"], float(outage["t_down"]), float(outage["t_up"])
    record = run_dir / "locust" / transport
    seconds = [s for s in read_seconds(record) if s["transport"] == transport]
    after = [s for s in seconds if s["t"] >= int(up) and s.get("delivered", 0) > 0]
    resumed = after[0]["t"] if after else None
    last = max((s["t"] for s in seconds if s["t"] <= down and s.get("delivered", 0) > 0), default=None)
    end = (resumed if resumed is not None else up) + AFTER_S
    during = [s for s in seconds if int(down) <= s["t"] <= end]
    windows = read_jsonl(record / schema.WINDOWS_FILE)
    hit = next((w for w in windows if float(w["t_start"]) <= down <= float(w["t_end"])
                or float(w["t_start"]) <= up <= float(w["t_end"])), None)
    return {
        **outage,
        "reconnect_s": None if outage.get("t_reconnected") is None else outage["t_reconnected"] - up,
        "resume_within_s": None if resumed is None else max(0.0, resumed + 1 - up),
        "silent_s": None if resumed is None or last is None else resumed - last - 1,
        **{name: int(sum(s.get(name, 0) for s in during)) for name in ("lost", "duplicated", "reordered")},
        # Only until delivery resumed: the next step's new users connect a few seconds later.
        "connects": int(sum(s.get("connects", 0) for s in during if resumed is None or s["t"] <= resumed)),
        "step": None if hit is None else int(hit["step"]), "users": None if hit is None else int(hit["users"]),
    }


def outage_note(effect: dict[str, Any]) -> str:
    """One outage in a sentence, for meta.json's notes and the scenario's verdict."""
    if "error" in effect:
        return f"{effect['transport']}: the Redis outage could not be injected: {effect['error']}"

    def secs(value: float | None, digits: int = 1) -> str:
        return "never (within the run)" if value is None else f"{value:.{digits}f} s"

    where = (f"during step {effect['step']} ({effect['users']} users)" if effect.get("step") is not None
             else "between measurement windows")
    return (f"{effect['transport']}: Redis was stopped for {effect['down_s']:.1f} s {where} and restarted empty on its "
            f"port; every worker was reconnected {secs(effect['reconnect_s'], 2)} after it came back; no delivery for "
            f"{secs(effect['silent_s'], 0)}, delivery resumed within {secs(effect['resume_within_s'])} of the restart; "
            f"from the outage to {AFTER_S:g} s after: {effect['lost']} lost, {effect['duplicated']} duplicated, "
            f"{effect['reordered']} reordered; {effect['connects']} (re)connects until delivery resumed")


def record_outages(run_dir: Path) -> list[dict[str, Any]]:
    """Read the arm's outages.jsonl, add each outage's effects, rewrite it, and add one note per outage to
    meta.json's notes (the report lists them); the effects, one per outage."""
    from rtcap.loadtests.run.collect import read_jsonl
    from rtcap.reports.rundir import read_json

    path = run_dir / schema.OUTAGES_FILE
    effects = [line if "error" in line else outage_effects(run_dir, line) for line in read_jsonl(path)]
    effects = [{**effect, "note": outage_note(effect)} for effect in effects]
    path.write_text("".join(json.dumps(e) + "\n" for e in effects), encoding="utf-8")
    meta = read_json(run_dir / schema.META_FILE)
    meta["notes"] = [*(meta.get("notes") or []), *(e["note"] for e in effects)]
    schema.write_meta(run_dir, meta)
    return effects
