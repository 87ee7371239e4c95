"""What a transport's pre-load check (`rtcap check-target`) is handed: a receiver its reading thread fills, and
the error that says the transport did not behave as declared.

Locust-free, like every check: checks run in the orchestrating process, which must never import Locust (it
monkey-patches threads and sockets with gevent). loadtests/run/check.py drives them.
"""

from __future__ import annotations

import queue
import threading
from typing import Any


class CheckFailed(RuntimeError):
    """One transport did not behave as declared."""


class Receiver:
    """Collects (message, receive time, sse id) from one connection on a background thread."""

    def __init__(self) -> None:
        self.items: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.client: Any = None
        self.stop = threading.Event()
        self.polling = threading.Event()
        """Set when a polled transport's first request is going out: publishing before it could go unseen."""
        self.first_answer_ms: float | None = None

    def run(self, loop: Any) -> None:
        """Run `loop` on a daemon thread, keeping its first exception."""
        def guarded() -> None:
            try:
                loop()
            except BaseException as error:  # noqa: BLE001 - reported by the checker, not raised on a thread
                if not self.stop.is_set():
                    self.error = error
            finally:
                self.polling.set()  # never leave the checker waiting for a poll that will not come
        threading.Thread(target=guarded, daemon=True).start()


