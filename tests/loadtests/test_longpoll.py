"""Long polling viewers in real headless Locust runs on loopback: held connections, news at once, quiet timeouts."""

from __future__ import annotations

import uuid
from pathlib import Path

from rtcap.loadtests.run.collect import collect_transport
from tests.loadtests.locust_run import finish, locust_stats, start_locust
from tests.loadtests.polled import QUIET_WAIT_S, adapter_file, start_steps


def test_long_pollers_hold_connections_get_news_at_once_and_time_out_without_errors(reference_url: str,
                                                                                    tmp_path: Path) -> None:
    adapter = str(adapter_file(tmp_path, reference_url))
    # Two independent runs at once, to keep the suite's wall time down.
    live = start_steps(reference_url, "LongPollUser", "4", tmp_path / "live", "--target", adapter)
    quiet = start_locust(reference_url, "LongPollUser", 3, 3, tmp_path / "quiet", "--target", adapter,
                         "--channel", f"quiet-{uuid.uuid4().hex[:8]}")
    finish(live, tmp_path / "live")
    idle = finish(quiet, tmp_path / "quiet")["longpoll"]
    [row] = collect_transport("longpoll", tmp_path / "live", [])
    # Every viewer holds its request open: the step's connections are its users, as for SSE.
    assert row["connections"] == 4 and "connections_short" not in row["flags"]
    assert row["errors"] == 0 and row["lost"] == row["duplicated"] == 0
    # 20 events/s: each answer brings about one event and the viewer asks again at once, so requests follow
    # the events, and news arrives in milliseconds, not half a poll interval.
    assert row["msgs_per_s"] >= 4 * 15 and row["rps"] >= 4 * 5
    assert row["latency_p99_ms"] < 250
    # A quiet channel: every held request times out with nothing new, a 304 after the wait, and no error.
    assert idle["errors"] == 0 and idle["delivered"] == 0
    assert idle["requests"] >= 3 * 5
    assert idle["not_modified"] >= idle["requests"] - 3  # all but each viewer's first answer
    assert float(locust_stats(tmp_path / "quiet")[("GET", "/poll")]["50%"]) >= QUIET_WAIT_S * 1000 * 0.9
