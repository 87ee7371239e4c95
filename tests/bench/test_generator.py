"""bench.generator, small: rtcap's crowd of WebSocket listeners, the stock gevent client and the stock polling
client against nginx+nchan, and the report stage on a synthesized run."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from rtcap.bench import report_scale
from rtcap.bench.arms import Arm, Plan
from rtcap.bench.generator import ratios, rtcap_arms, table
from rtcap.bench.sampled_arms import stock_arm, stock_poll_arm
from rtcap.bench.truth import ROOT

pytestmark = pytest.mark.solo  # CPU per event and memory per connection: alone (tests/solo.py)


@pytest.fixture(scope="module")
def nchan_installed() -> None:
    """Install nginx + nchan the way CI does (targets/examples/install.sh); skip where that is impossible."""
    subprocess.run(["bash", str(ROOT / "targets" / "examples" / "install.sh")], capture_output=True, timeout=900,
                   check=False)
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx + nchan are not installed (Debian packages nginx, libnginx-mod-nchan)")


def test_the_generator_arms_measure_memory_per_connection_and_cpu_per_event(tmp_path: Path, nchan_installed: None) -> None:
    plan = Plan(steps=(40, 120), rate=5.0, hold=3.0, held_per_user=20)
    # The stock poll arm is tiny (its own nchan, a few polls per second): it runs while rtcap's arm does.
    polled = Plan(steps=(20, 60), rate=5.0, hold=2.0, poll_interval=0.5)
    with ThreadPoolExecutor(1) as pool:
        polling = pool.submit(stock_poll_arm, tmp_path, polled)
        arms = [*rtcap_arms(tmp_path, plan, "crowd", "ws", plan.held_per_user), stock_arm(tmp_path, plan)]
        stock_poll = polling.result(timeout=120)
    for arm in arms:
        assert [s.connections for s in arm.steps] == [40, 120], arm
        for step in arm.steps:
            # Every connection gets every event: about rate x connections x seconds (edges trimmed).
            assert step.delivered >= 0.7 * plan.rate * step.connections * step.seconds, (arm.name, step)
            assert step.cpu_s and step.cpu_s > 0 and step.rss_bytes
        assert arm.bytes_per_connection() is not None
    assert all(s.valid for s in arms[0].steps)
    text = table(arms)
    assert "rtcap ws, 20 per user" in text and "stock ws" in text
    assert "rtcap ws, 20 per user vs stock ws" in ratios(arms)
    check_stock_poll_arm(stock_poll, polled)


def check_stock_poll_arm(stock: Arm, plan: Plan) -> None:
    """The stock poll arm polled on its schedule at each step and is compared with rtcap's poll arm only."""
    assert [s.connections for s in stock.steps] == list(plan.steps), stock
    for step in stock.steps:
        # Every viewer polls once per interval, on its schedule: connections x seconds / interval polls.
        assert step.requests >= 0.8 * step.connections * step.seconds / plan.poll_interval, step
        assert 0 < step.delivered <= step.requests and step.cpu_s and step.rss_bytes and step.valid, step
    assert stock.bytes_per_connection() is not None
    # Compared in polls, and with rtcap's poll arm only: a poll arm doing half the polls on the same CPU.
    rtcap = Arm("rtcap poll", [replace(s, requests=s.requests / 2) for s in stock.steps])
    pushed = Arm("rtcap ws", list(stock.steps))
    text = table([rtcap, pushed, stock])
    assert "| stock poll (gevent + geventhttpclient) |" in text and " polls |" in text
    assert ratios([rtcap, pushed, stock]).splitlines() == [
        "- rtcap poll vs stock poll (gevent + geventhttpclient): memory per connection 1.00x, "
        "polls per CPU-second 0.50x"]


def test_the_report_stage_is_timed_on_a_synthesized_run(tmp_path: Path) -> None:
    result = report_scale.measure(tmp_path, seconds=400)
    assert result["steps"] == report_scale.STEPS and result["report_bytes"] > 0
    assert (tmp_path / "run" / "summary.md").read_text().strip()
    assert all(result[key] > 0 for key in ("collect_s", "summary_md_s", "report_html_s"))
