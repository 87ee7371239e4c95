"""An exception inside a user is never silent: a real Locust run whose user raises, then collect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rtcap.loadtests.run import collect
from rtcap.loadtests.generator.recorder import is_generator_limit

PACKAGE = Path(__file__).parents[3] / "loadtests" / "generator"
RAISING_USER = '''
from locust import User, constant, task


class RaisingUser(User):
    """Stands for a user whose own code fails (a MemoryError from a runaway structure, say)."""

    wait_time = constant(0.25)
    transport = "sse"

    @task
    def fail(self):
        raise MemoryError("simulated: the user's own code failed")
'''


def test_an_exception_in_a_user_invalidates_its_step_by_name(tmp_path: Path) -> None:
    user = tmp_path / "raising.py"
    user.write_text(RAISING_USER, encoding="utf-8")
    record = tmp_path / "record"
    files = f"{PACKAGE / 'catalog.py'},{PACKAGE / 'stepload.py'},{user}"
    done = subprocess.run([sys.executable, "-m", "locust", "-f", files, "--headless", "--host", "http://127.0.0.1:9",
                           "--rtcap-record", str(record), "--steps", "2", "--step-hold", "3", "--step-settle", "1",
                           "--loglevel", "ERROR", "RaisingUser"], capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    rows = collect.collect_transport("sse", record, [])
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["exceptions"] >= 4 and "MemoryError x" in row["exception_names"]
    assert "generator_exception" in row["flags"] and row["valid"] is False


def test_generator_limits_are_recognised_through_wrapping() -> None:
    try:
        try:
            raise OSError(24, "Too many open files")
        except OSError as inner:
            raise ConnectionError("connect failed") from inner
    except ConnectionError as wrapped:
        assert is_generator_limit(wrapped)
    assert is_generator_limit(OSError(99, "Cannot assign requested address"))
    assert not is_generator_limit(ConnectionRefusedError(111, "Connection refused"))
