"""Run real headless Locust processes against a target and read back what the recorder wrote."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from rtcap.loadtests.generator.timeline import read_timeline

ROOT = Path(__file__).resolve().parents[2]


def start_locust(host: str, user_class: str, users: int, seconds: int, record: Path, *extra: str,
                 locustfile: str = "locustfile.py") -> subprocess.Popen:
    """Start `python -m locust -f locustfile.py --headless` for one user class ("" for all); output goes to record/locust.log.

    `locustfile` (relative to the repository) may name another file, e.g. loadtests/generator/catalog.py for every user class."""
    record.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / locustfile), "--headless", "--host", host,
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--only-summary", "--loglevel", "WARNING",
        "--csv", str(record / "locust"), "--rtcap-record", str(record), *extra,
    ]
    if user_class:
        command.append(user_class)
    return subprocess.Popen(command, stdout=(record / "locust.log").open("w"), stderr=subprocess.STDOUT, cwd=ROOT)


def finish(process: subprocess.Popen, record: Path, timeout: float = 60) -> dict[str, dict[str, int]]:
    """Wait for Locust; return per-transport totals of the recorded timeline."""
    code = process.wait(timeout)
    log = (record / "locust.log").read_text()
    assert code in (0, 1), f"Locust exited {code}:\n{log}"
    assert "Traceback" not in log, log
    totals: dict[str, dict[str, int]] = {}
    for second in read_timeline(record / "timeline.jsonl"):
        bucket = totals.setdefault(second["transport"], {})
        for key, value in second.items():
            if isinstance(value, int) and key != "t":
                bucket[key] = (max if key == "open_connections" else sum)((bucket.get(key, 0), value))
    return totals


def locust_stats(record: Path) -> dict[tuple[str, str], dict[str, str]]:
    """Locust's own stats CSV, keyed by (type, name)."""
    with (record / "locust_stats.csv").open() as handle:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(handle)}


def subscribers(record: Path) -> list[dict]:
    """The per-subscriber accounting the recorder wrote when the users stopped."""
    import json

    return [json.loads(line) for path in sorted(record.glob("subscribers*.jsonl")) for line in path.read_text().splitlines()]
