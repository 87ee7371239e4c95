"""Shared fixtures: a real reference target on loopback, started from its own adapter file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from rtcap.targets.adapter import load_adapter, reference_adapter_path
from rtcap.targets.launch import LaunchedTarget, launch

pytest_plugins = ["tests.solo", "tests.unpatched"]


def launch_reference(*server_args: str, rate: float = 20, payload: int = 64) -> LaunchedTarget:
    """Start a reference target from its adapter, with extra command-line flags (e.g. "--buffer", "40")."""
    adapter = load_adapter(reference_adapter_path())
    started = replace(adapter.process, start=[*adapter.process.start, *server_args])
    return launch(replace(adapter, process=started), rate=rate, payload=payload)


@pytest.fixture(scope="session")
def reference_url() -> Iterator[str]:
    """Base URL of a reference target publishing 20 events/s on channel `live`."""
    target = launch(load_adapter(reference_adapter_path()), rate=20, payload=64)
    yield target.adapter.base_url
    assert target.stop() == 0
