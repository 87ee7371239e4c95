"""Tests marked `solo` run with nothing else on the machine, also when the suite runs on several xdist workers.

Why: most of the suite waits on sockets and timers (a load test uses about a fifth of a core on average), so two
workers halve its time; but a few tests measure the machine itself (the benchmarks' CPU per event and memory per
connection, latency truth) or load it hard (Chromium, network namespaces, a saturated generator), and those must
neither disturb nor be disturbed. Every test holds a shared lock for its whole protocol (setup, call, teardown,
so module fixtures are covered); a `solo` test holds it exclusively. A turnstile taken before the lock lets a
waiting solo test in before the other worker's next test.

Outside xdist workers (a plain `pytest`, or a pytest a test starts itself) nothing is locked.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

MARK = "solo"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARK}: run with no other test at the same time (measures or loads the machine)")


@contextmanager
def _locked(directory: Path, solo: bool) -> Iterator[None]:
    with (directory / "turnstile.lock").open("a") as turnstile, (directory / "machine.lock").open("a") as machine:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(machine, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(machine, fcntl.LOCK_UN)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    worker = getattr(item.config, "workerinput", None)
    if worker is None:
        yield
        return
    # A worker's basetemp is <the run's basetemp>/<worker id>: the parent is shared by this run's workers only,
    # and pytest removes it with the run's other temporary folders.
    directory = item.config._tmp_path_factory.getbasetemp().parent
    with _locked(directory, item.get_closest_marker(MARK) is not None):
        yield
