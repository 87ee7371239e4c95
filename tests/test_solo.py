"""tests/solo.py: on two xdist workers a `solo` test overlaps no other test, while the others do overlap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HELPERS = '''
import json, os, time
from pathlib import Path

LOG = Path(os.environ["SOLO_LOG"])


def work(name, seconds, meet=None):
    """Note when this test began and ended; with `meet`, first wait (at most 5 s) until a test named so began."""
    began = time.time()
    (LOG.parent / f"{name}.began").write_text("")
    deadline = time.monotonic() + 5
    while meet and not list(LOG.parent.glob(f"{meet}*.began")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(seconds)
    with LOG.open("a") as log:
        log.write(json.dumps({"name": name, "began": began, "ended": time.time()}) + "\\n")
'''

PLAIN = '''
import pytest
from helpers import work


@pytest.mark.parametrize("n", range(3))
def test_plain(n):
    work(f"{ME}{n}", 0.3, meet="{OTHER}")
'''

SOLO = '''
import pytest
from helpers import work


@pytest.mark.solo
def test_alone():
    work("solo", 0.5)
'''


def test_a_solo_test_runs_alone_and_the_others_side_by_side(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text('pytest_plugins = ["tests.solo"]\n')
    (suite / "helpers.py").write_text(HELPERS)
    (suite / "test_a.py").write_text(PLAIN.replace("{ME}", "a").replace("{OTHER}", "b"))
    (suite / "test_b.py").write_text(PLAIN.replace("{ME}", "b").replace("{OTHER}", "a"))
    (suite / "test_c.py").write_text(SOLO)
    log = tmp_path / "log.jsonl"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist",
                           "loadscope", "-c", os.devnull, "--rootdir", str(suite), str(suite)],
                          cwd=suite, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SOLO_LOG": str(log), "PYTHONPATH": f"{ROOT}{os.pathsep}{suite}"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r["name"] for r in runs) == ["a0", "a1", "a2", "b0", "b1", "b2", "solo"]
    solo = next(r for r in runs if r["name"] == "solo")
    others = [r for r in runs if r["name"] != "solo"]
    assert all(r["ended"] <= solo["began"] or r["began"] >= solo["ended"] for r in others), runs
    # The plain tests did run side by side: the lock shares the machine instead of serialising everything.
    a, b = ([r for r in others if r["name"].startswith(k)] for k in "ab")
    assert any(x["began"] < y["ended"] and y["began"] < x["ended"] for x in a for y in b), runs
