"""bench.generator, small: rtcap's crowd of WebSocket listeners and the stock gevent client against nginx+nchan,
and the report stage on a synthesized run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rtcap.bench import report_scale
from rtcap.bench.generator import Plan, ratios, rtcap_arms, stock_arm, table
from rtcap.bench.truth import ROOT


@pytest.fixture(scope="module")
def nchan_installed() -> None:
    """Install nginx + nchan the way CI does (targets/examples/install.sh); skip where that is impossible."""
    subprocess.run(["bash", str(ROOT / "targets" / "examples" / "install.sh")], capture_output=True, timeout=900,
                   check=False)
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx + nchan are not installed (Debian packages nginx, libnginx-mod-nchan)")


def test_the_generator_arms_measure_memory_per_connection_and_cpu_per_event(tmp_path: Path, nchan_installed: None) -> None:
    plan = Plan(steps=(40, 120), rate=5.0, hold=3.0, held_per_user=20)
    arms = [*rtcap_arms(tmp_path, plan, "crowd", "ws", plan.held_per_user), stock_arm(tmp_path, plan)]
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


def test_the_report_stage_is_timed_on_a_synthesized_run(tmp_path: Path) -> None:
    result = report_scale.measure(tmp_path, seconds=400)
    assert result["steps"] == report_scale.STEPS and result["report_bytes"] > 0
    assert (tmp_path / "run" / "summary.md").read_text().strip()
    assert all(result[key] > 0 for key in ("collect_s", "summary_md_s", "report_html_s"))
