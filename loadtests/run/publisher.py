"""Publishes events into a target at a steady rate through the adapter's `[publish]` request (mode "http").

Runs on a thread of the orchestrating process (not a Locust user): publishing is the workload's source,
not part of the measured load, and it must keep its schedule whatever the subscribers do.

Every publish is measured, not assumed: with `record`, one JSON line per publish goes to publishes.jsonl
in the transport's record directory, so the collect stage can tell each step how many events were
published, how many failed (with the server's answer) and how long publishing took:

    {"t": 1700000000.25, "seq": 7, "ok": false, "ms": 3.1, "status": 500, "error": "answered 500: <body>"}

A redirected publish is a failed publish, unless the adapter sets `follow_redirects`: then a same-origin
307 or 308 is followed with the method and body kept, and any other redirect still fails the publish
(loadtests/run/urlopen.py). The flag reaches this thread on the PublishSpec, which the adapter fills in.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rtcap.loadtests.transports.http_client import RedirectNotFollowed
from rtcap.loadtests.run.urlopen import urlopen
from rtcap.targets.adapter import PublishSpec

BODY_EXCERPT = 200
"""Characters of a failed publish's answer kept as its reason."""


class PublishError(RuntimeError):
    """The target refused a published event."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _excerpt(data: bytes) -> str:
    text = data[:BODY_EXCERPT * 4].decode("utf-8", "replace").strip()
    return " ".join(text.split())[:BODY_EXCERPT]


def publish_once(spec: PublishSpec, seq: int, channel: str, timeout: float = 5.0, counter: int | None = None) -> float:
    """Send one event now (`seq` renders `{seq}`, `counter` renders `{counter}`); return its publish time."""
    ts = time.time()
    method, url, headers, body = spec.render(seq, ts, channel, counter)
    request = urllib.request.Request(url, data=body if method != "GET" else None, method=method, headers=headers)
    try:
        with urlopen(request, timeout, follow_redirects=spec.follow_redirects) as response:
            response.read(1 << 20)
    except RedirectNotFollowed as error:  # only when following: off origin, a method change, a loop
        raise PublishError(f"{method} {url} failed: {error}", error.status) from error
    except urllib.error.HTTPError as error:
        where = error.headers.get("Location") if 300 <= error.code < 400 and error.headers else None
        detail = f"redirected to {where} (redirects are not followed)" if where else _excerpt(error.read(4096))
        raise PublishError(f"{method} {url} answered {error.code}" + (f": {detail}" if detail else ""),
                           error.code) from error
    except (OSError, ValueError) as error:
        raise PublishError(f"{method} {url} failed: {getattr(error, 'reason', error)}") from error
    return ts


@dataclass
class Publisher:
    """Publishes `rate` events per second on a background thread until stopped (or `limit_s` passes)."""

    spec: PublishSpec
    channel: str
    rate: float
    limit_s: float = 3600.0
    record: Path | None = None
    published: int = 0
    failures: list[str] = field(default_factory=list)
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "Publisher":
        """Start publishing."""
        if self.rate <= 0:
            raise ValueError(f"publish rate must be positive, got {self.rate}")
        self._thread = threading.Thread(target=self._run, name="rtcap-publisher", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        out: TextIO | None = self.record.open("a", encoding="utf-8") if self.record is not None else None
        try:
            started = time.monotonic()
            period = 1.0 / self.rate
            # {seq} keeps rising across publishers (the pre-load check's, then the run's): start time in ms
            # plus the count. {counter} is 1, 2, 3... for servers that store what they are sent as their ids.
            base = int(time.time() * 1000)
            count = 0
            while not self._stop.is_set() and time.monotonic() - started < self.limit_s:
                count += 1
                line = self._publish(base + count, count)
                if out is not None:
                    out.write(json.dumps(line) + "\n")
                    out.flush()
                # Deadlines from the start, so a slow request does not stretch the schedule.
                self._stop.wait(max(0.0, started + count * period - time.monotonic()))
        finally:
            if out is not None:
                out.close()

    def _publish(self, seq: int, counter: int) -> dict[str, Any]:
        sent = time.time()
        clock = time.perf_counter()
        try:
            publish_once(self.spec, seq, self.channel, counter=counter)
        except PublishError as error:
            self.failed += 1
            if len(self.failures) < 100:
                self.failures.append(str(error))
            return {"t": sent, "seq": seq, "ok": False, "ms": (time.perf_counter() - clock) * 1000.0,
                    "status": error.status, "error": str(error)[:BODY_EXCERPT * 2]}
        self.published += 1
        return {"t": sent, "seq": seq, "ok": True, "ms": (time.perf_counter() - clock) * 1000.0}

    def stop(self) -> int:
        """Stop publishing; return how many events were published."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return self.published
