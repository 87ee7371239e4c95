"""Publishes events into a target at a steady rate through the adapter's `[publish]` request (mode "http").

Runs on a thread of the orchestrating process (not a Locust user): publishing is the workload's source,
not part of the measured load, and it must keep its schedule whatever the subscribers do.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from targets.adapter import PublishSpec


class PublishError(RuntimeError):
    """The target refused a published event."""


def publish_once(spec: PublishSpec, seq: int, channel: str, timeout: float = 5.0) -> float:
    """Send one event now; return its publish time (the `ts` it carries)."""
    ts = time.time()
    method, url, headers, body = spec.render(seq, ts, channel)
    request = urllib.request.Request(url, data=body if method != "GET" else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        raise PublishError(f"{method} {url} answered {error.code}") from error
    except OSError as error:
        raise PublishError(f"{method} {url} failed: {error}") from error
    return ts


@dataclass
class Publisher:
    """Publishes `rate` events per second on a background thread until stopped (or `limit_s` passes)."""

    spec: PublishSpec
    channel: str
    rate: float
    limit_s: float = 3600.0
    published: int = 0
    failures: list[str] = field(default_factory=list)
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
        started = time.monotonic()
        period = 1.0 / self.rate
        seq = 0
        while not self._stop.is_set() and time.monotonic() - started < self.limit_s:
            seq += 1
            try:
                publish_once(self.spec, seq, self.channel)
                self.published += 1
            except PublishError as error:
                if len(self.failures) < 100:
                    self.failures.append(str(error))
            # Deadlines from the start, so a slow request does not stretch the schedule.
            self._stop.wait(max(0.0, started + seq * period - time.monotonic()))

    def stop(self) -> int:
        """Stop publishing; return how many events were published."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return self.published
