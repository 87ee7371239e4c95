"""Locust event hooks that start the per-second timeline recorder when `--rtcap-record DIR` is given."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from locust import events
from locust.runners import MasterRunner, WorkerRunner

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
    """Start recording when a test starts, if a record directory was asked for.

    Requests happen where users run: in a distributed run each worker records its own timeline file
    (timeline-<pid>.jsonl) and the collect stage merges them; the master records nothing.
    """
    record = Settings.of(environment).rtcap_record
    if not record or id(environment) in _recorders or isinstance(environment.runner, MasterRunner):
        return
    name = f"timeline-{os.getpid()}.jsonl" if isinstance(environment.runner, WorkerRunner) else "timeline.jsonl"
    recorder = TimelineRecorder(environment, Path(record) / name)
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
