"""Helpers for Locust runs of polled transports: an adapter for a running target, and a step-shaped run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUIET_WAIT_S = 0.3
"""How long the test adapter's long polls wait: a quiet channel's polls time out this fast."""


def adapter_file(directory: Path, base_url: str) -> Path:
    """An adapter for a running reference target whose long polls wait QUIET_WAIT_S and whose polled transports
    count the X-Cache header."""
    path = directory / "adapter.toml"
    path.write_text(f'''name = "polled"
base_url = "{base_url}"
[publish]
mode = "self"
[transports.poll]
url = "/poll?channel={{channel}}&since={{cursor}}"
events = "events"
cursor = "seq"
cache_header = "X-Cache"
[transports.longpoll]
url = "/poll?channel={{channel}}&since={{cursor}}&wait={QUIET_WAIT_S}"
events = "events"
cursor = "seq"
[transports.state]
url = "/state?channel={{channel}}"
events = "events"
conditional = false
cache_header = "X-Cache"
''', encoding="utf-8")
    return path


def start_steps(host: str, user_class: str, steps: str, record: Path, *extra: str) -> subprocess.Popen:
    """Headless Locust with the step shape (as `rtcap run` runs it), 3 s holds; output goes to record/locust.log."""
    record.mkdir(parents=True, exist_ok=True)
    files = f"{ROOT / 'loadtests' / 'generator' / 'catalog.py'},{ROOT / 'loadtests' / 'generator' / 'stepload.py'}"
    command = [
        sys.executable, "-m", "locust", "-f", files, "--headless", "--host", host, "--only-summary",
        "--loglevel", "WARNING", "--csv", str(record / "locust"), "--rtcap-record", str(record), "--steps", steps,
        "--step-hold", "3", "--step-settle", "1", "--step-spawn-rate", "50", *extra, user_class,
    ]
    return subprocess.Popen(command, stdout=(record / "locust.log").open("w"), stderr=subprocess.STDOUT, cwd=ROOT)
