"""Shared fixtures: a real reference target on loopback, started from its own adapter file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from targets.adapter import load_adapter, reference_adapter_path
from targets.launch import launch


@pytest.fixture(scope="session")
def reference_url() -> Iterator[str]:
    """Base URL of a reference target publishing 20 events/s on channel `live`."""
    target = launch(load_adapter(reference_adapter_path()), rate=20, payload=64)
    yield target.adapter.base_url
    assert target.stop() == 0
