"""SIGINT and SIGTERM for the orchestrating process: stop cleanly once, at once the second time.

`rtcap run` starts process groups of its own (Locust and its workers, the target it launched), each in its
own session so that a terminal's Ctrl-C reaches rtcap alone and rtcap decides what stops when. Inside
`handled()` the first SIGINT or SIGTERM raises `Interrupted` in the main thread: the step in progress is
abandoned, Locust is asked to stop and write what it recorded, what was measured is written and the
started processes are stopped; the run then exits 128 + the signal number (130 for SIGINT, 143 for
SIGTERM). A second signal kills every registered process group at once and exits with the same code.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_groups: set[int] = set()
_received: list[int] = []


class Interrupted(BaseException):
    """A signal asked rtcap to stop (a BaseException, so that no `except Exception` swallows it).

    `rows` and `samples` carry what was measured of the transport in progress, once it is collected."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.rows: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process its signal ended."""
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def register(pgid: int) -> None:
    """A process group rtcap started: killed at once on a second signal."""
    _groups.add(pgid)


def unregister(pgid: int) -> None:
    """The group has been stopped."""
    _groups.discard(pgid)


def kill_groups(sig: int = signal.SIGKILL) -> None:
    """Send `sig` to every registered process group."""
    for pgid in list(_groups):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def _handler(signum: int, _frame: Any) -> None:
    _received.append(signum)
    if len(_received) > 1:
        kill_groups()
        os._exit(128 + _received[0])
    raise Interrupted(signum)


@contextmanager
def handled() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `Interrupted` while the block runs (main thread only)."""
    previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    _received.clear()
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
