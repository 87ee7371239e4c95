"""--held-per-user K: feed listeners holding K connections each, read from the event loop, measure what one
connection per user measures (real headless Locust runs against the real reference target on loopback)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.loadtests.locust_run import ROOT, finish, locust_stats, start_locust, subscribers

SECONDS = 5
PUSH = [("SSEUser", "sse"), ("WebSocketUser", "ws"), ("NDJSONUser", "ndjson")]


@pytest.mark.parametrize(("user_class", "transport"), PUSH)
def test_two_users_of_five_connections_receive_every_event_on_each(reference_url: str, tmp_path: Path,
                                                                   user_class: str, transport: str) -> None:
    run = start_locust(reference_url, user_class, 2, SECONDS, tmp_path, "--held-per-user", "5")
    totals = finish(run, tmp_path)[transport]
    assert totals["connects"] == 10 and totals["open_connections"] == 10
    # 20 events/s for about SECONDS to each of 10 connections (spawn and stop trim the edges).
    assert totals["delivered"] >= 10 * 20 * (SECONDS - 2)
    assert totals["errors"] == 0
    assert totals.get("lost", 0) == totals.get("duplicated", 0) == totals.get("reordered", 0) == 0
    assert totals["payload_bytes"] > totals["delivered"] * 64 and totals["bytes_received"] > totals["payload_bytes"]
    delivery = locust_stats(tmp_path)[(transport, "delivery")]
    # Locust's CSV is written once a second: its last write may miss what came in after it.
    assert totals["delivered"] - 10 * 20 <= int(delivery["Request Count"]) <= totals["delivered"]
    assert float(delivery["99%"]) < 500
    # One subscriber record per connection, each a contiguous run of seqs.
    subs = subscribers(tmp_path)
    assert len(subs) == 10
    for sub in subs:
        assert sub["lost"] == 0 and sub["received"] == sub["highest"] - sub["first"] + 1


def test_other_transports_refuse_several_connections_per_user(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "rtcap.loadtests.cli", "run", "--transports", "ws,poll", "--steps",
                           "10", "--held-per-user", "5", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2
    assert "--held-per-user: only sse,ws,ndjson listeners hold several connections each; not poll" in done.stderr
    done = subprocess.run([sys.executable, "-m", "rtcap.loadtests.cli", "run", "--transports", "ws", "--steps",
                           "10,12", "--held-per-user", "5", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and "--steps: 12 connections is not a multiple of --held-per-user 5" in done.stderr
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_a_sweep_counts_steps_in_connections_whatever_each_user_holds(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "rtcap.loadtests.cli", "run", "--transports", "ws", "--steps", "10,20",
                           "--held-per-user", "5", "--hold", "3", "--settle", "1", "--settle-max", "0", "--no-report",
                           "--out-dir", str(tmp_path), "--name", "crowd"],
                          capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = list(csv.DictReader((tmp_path / "crowd" / "steps.csv").open()))
    assert [int(s["users"]) for s in steps] == [10, 20]  # 2 and 4 Locust users, 5 connections each
    assert [int(float(s["connections"])) for s in steps] == [10, 20]
    assert all(s["valid"] == "True" and not s["flags"] for s in steps), steps
