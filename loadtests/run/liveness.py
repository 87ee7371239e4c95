"""Is the target still answering? A health prober on a thread of the orchestrating process.

A process can be alive to psutil and still serve nothing: stopped (SIGSTOP), deadlocked, or swapped out.
Its kernel still completes TCP handshakes from the listen backlog, so only an HTTP answer proves it is
serving. Every `interval` seconds the prober GETs the target's health URL (the adapter's `ready_url`) with a
short timeout and appends one JSON line per probe to `health.jsonl` in the transport's record directory:

    {"t": 1700000000.5, "ok": true, "ms": 1.2, "status": 200}
    {"t": 1700000001.5, "ok": false, "ms": 2000.4, "status": null, "error": "timed out"}

The collect stage marks a step whose window holds a failed probe `target_unresponsive` (never valid).
Redirects are not followed: a health URL that redirects is answering something else.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rtcap.loadtests.run.urlopen import urlopen

PROBE_TIMEOUT_S = 2.0
"""A health answer slower than this counts as no answer: a step cannot be valid while its target stalls."""


def probe_once(url: str, timeout: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """GET `url` once; the probe's line (ok only for a 2xx within `timeout`)."""
    started = time.time()
    status: int | None = None
    error = None
    try:
        with urlopen(urllib.request.Request(url, headers={"User-Agent": "rtcap-health"}), timeout) as answer:
            status = answer.status
            answer.read(65536)
    except urllib.error.HTTPError as failure:
        status, error = failure.code, f"answered {failure.code}"
    except (OSError, ValueError) as failure:
        error = str(getattr(failure, "reason", failure)) or failure.__class__.__name__
    line: dict[str, Any] = {"t": started, "ok": error is None and status is not None and 200 <= status < 300,
                            "ms": round((time.time() - started) * 1000.0, 3), "status": status}
    if error is not None:
        line["error"] = error[:200]
    return line


class HealthProber:
    """Probes `url` every `interval` seconds on a background thread until stopped."""

    def __init__(self, url: str, path: Path, interval: float = 1.0, timeout: float = PROBE_TIMEOUT_S) -> None:
        self.url = url
        self.path = path
        self.interval = interval
        self.timeout = timeout
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtcap-health", daemon=True)

    def start(self) -> "HealthProber":
        """Start probing."""
        self._thread.start()
        return self

    def _run(self) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            next_due = time.monotonic()
            while not self._stop.is_set():
                line = probe_once(self.url, self.timeout)
                self.failures += not line["ok"]
                out.write(json.dumps(line) + "\n")
                out.flush()
                next_due += self.interval
                self._stop.wait(max(0.0, next_due - time.monotonic()))

    def stop(self) -> None:
        """Stop probing (waits for a probe in flight, at most its timeout)."""
        self._stop.set()
        self._thread.join(timeout=self.timeout + 1.0)

