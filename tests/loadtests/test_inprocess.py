"""Runs tests/loadtests/inproc (Locust inside the test process) in a pytest process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_in_process_locust_tests_pass_in_their_own_process(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t"),
               str(ROOT / "tests" / "loadtests" / "inproc")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280,
                          env={**os.environ, "RTCAP_INPROC": "1"})
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout[-2000:]
