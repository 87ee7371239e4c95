"""Shared fixtures: a real reference target on loopback, started through rtcap's own launcher."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from targets.process import TargetProcess


@pytest.fixture(scope="session")
def reference_url() -> Iterator[str]:
    """Base URL of a reference target publishing 20 events/s on channel `live`."""
    target = TargetProcess.reference(rate=20, payload=64)
    url = target.start()
    yield url
    assert target.stop() == 0
