"""The worked examples as rtcap targets: `check-target` passes and a short `rtcap run` measures them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rtcap.loadtests.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "targets" / "examples"
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")


def _need(example: str) -> None:
    if example == "nchan" and not (shutil.which("nginx", path="/usr/sbin:/usr/bin") and NCHAN_MODULE.is_file()):
        pytest.skip("nginx with the nchan module is not installed (apt-get install nginx libnginx-mod-nchan)")
    if example == "websocketd" and not shutil.which("websocketd"):
        pytest.skip("websocketd is not installed (apt-get install websocketd)")


@pytest.mark.parametrize("example", ["nchan", "websocketd"])
def test_check_target_passes(example: str, capsys: pytest.CaptureFixture) -> None:
    _need(example)
    assert main(["check-target", str(EXAMPLES / example / "adapter.toml")]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and "process    ok" in out


@pytest.mark.parametrize(("example", "transports", "steps", "per_conn_floor"), [
    ("nchan", "sse,ws,poll", "20,40,60", 1024),
    # One ticker process per connection: megabytes each.
    ("websocketd", "ws", "4,8,12", 1024 * 1024),
])
def test_a_short_run_measures_memory_per_connection_and_latency(
        example: str, transports: str, steps: str, per_conn_floor: int, tmp_path: Path) -> None:
    _need(example)
    code = main(["run", "--target", str(EXAMPLES / example / "adapter.toml"), "--transports", transports,
                 "--steps", steps, "--hold", "3", "--settle", "1", "--settle-max", "0", "--out-dir", str(tmp_path), "--name", example])
    assert code == 0
    summary = json.loads((tmp_path / example / "summary.json").read_text())
    for transport in transports.split(","):
        figures = summary["transports"][transport]
        assert figures["errors"] == 0 and figures["lost"] == 0, transport
        assert figures["delivery_ms"]["p99"] is not None, transport
        assert figures["msgs_per_s"] > 0, transport
    push = [t for t in transports.split(",") if t != "poll"]
    for transport in push:
        assert summary["transports"][transport]["mem_per_conn_bytes"] > per_conn_floor, transport
    meta = json.loads((tmp_path / example / "meta.json").read_text())
    assert meta["target"]["name"] == example and meta["target"]["kind"] == "adapter"
    assert (tmp_path / example / "report.html").is_file()
