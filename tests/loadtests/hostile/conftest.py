"""The hostile server, started once for the tests in this package and stopped after them."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def hostile() -> Iterator[int]:
    """The hostile server in its own process (its memory is not the client's); yields its port."""
    process = subprocess.Popen([sys.executable, "-m", "tests.loadtests.hostile.server"], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        announced: list[str] = []
        reader = threading.Thread(target=lambda: announced.append(process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(10)
        assert announced and announced[0].strip().isdigit(), f"the hostile server did not start: {announced}"
        yield int(announced[0])
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
