"""Locust event hooks that start the per-second timeline recorder when `--rtcap-record DIR` is given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from locust import events

from loadtests.options import Settings
from loadtests.recorder import TimelineRecorder
from targets.adapter import AdapterError, load_adapter

_recorders: dict[int, TimelineRecorder] = {}


@events.init.add_listener
def check_target(environment: Any, **_kwargs: Any) -> None:
    """Load --target once at start, so a bad adapter file stops Locust with its message, not a traceback."""
    settings = Settings.of(environment)
    if not settings.target:
        return
    try:
        adapter = load_adapter(settings.target)
    except (AdapterError, OSError) as error:
        raise SystemExit(f"rtcap: {error}") from None
    if not environment.host and "{port}" not in adapter.base_url:
        environment.host = adapter.base_url


@events.test_start.add_listener
def start_recorder(environment: Any, **_kwargs: Any) -> None:
    """Start recording when a test starts, if a record directory was asked for."""
    record = Settings.of(environment).rtcap_record
    if record and id(environment) not in _recorders:
        recorder = TimelineRecorder(environment, Path(record) / "timeline.jsonl")
        recorder.start()
        _recorders[id(environment)] = recorder


@events.test_stop.add_listener
def stop_recorder(environment: Any, **_kwargs: Any) -> None:
    """Write what is left when the test stops."""
    recorder = _recorders.pop(id(environment), None)
    if recorder is not None:
        recorder.stop()


@events.quitting.add_listener
def stop_on_quit(environment: Any, **_kwargs: Any) -> None:
    """Make sure nothing recorded is lost when Locust quits."""
    stop_recorder(environment)
