"""`rtcap run` end to end on the bundled target, and its refusals."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rtcap.loadtests.cli import main
from rtcap.loadtests.generator.timeline import read_timeline

FIXED_FIELDS = {"max_connections", "mem_per_conn_bytes", "mem_per_conn_ci95", "baseline_rss_bytes", "delivery_ms",
                "rps", "msgs_per_s", "bytes_per_event", "errors", "lost", "duplicated", "reordered", "capacity_at_slo"}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sweep of poll, sse and ws: 3 steps of 20-60 users, 4 s holds."""
    out = tmp_path_factory.mktemp("runs")
    command = [sys.executable, "-m", "rtcap.loadtests.cli", "run", "--steps", "20,40,60", "--hold", "4", "--settle", "1",
               "--settle-max", "0", "--rate", "5", "--out-dir", str(out), "--name", "small"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"run directory: {out / 'small'}" in done.stdout
    assert f"report: {out / 'small' / 'report.html'}" in done.stdout
    return out / "small"


def test_run_directory_has_the_contract_files(small_run: Path) -> None:
    for name in ("meta.json", "summary.json", "steps.csv", "samples.csv", "report.html"):
        assert (small_run / name).is_file(), name
    for transport in ("poll", "sse", "ws"):
        assert (small_run / "locust" / transport / "locust_stats.csv").is_file()
    meta = json.loads((small_run / "meta.json").read_text())
    assert meta["transports"] == ["poll", "sse", "ws"] and meta["steps"] == [20, 40, 60]
    assert meta["start"] and meta["end"] and meta["target"]["kind"] == "reference"
    assert "{port}" not in meta["target"]["url"]
    assert all(check["url"].startswith("http://127.0.0.1:") for check in meta["target"]["checks"].values())


def test_steps_measure_connections_latency_and_memory(small_run: Path) -> None:
    steps = pd.read_csv(small_run / "steps.csv")
    assert len(steps) == 9
    for transport, rows in steps.groupby("transport"):
        assert list(rows["users"]) == [20, 40, 60]
        # The target itself held one TCP connection per user (keep-alive for polling).
        assert list(rows["connections"]) == [20, 40, 60], transport
        assert (rows["delivered"] > 0).all() and (rows["errors"] == 0).all()
        assert rows["rss_bytes"].notna().all() and rows["generator_cpu_percent"].notna().all()
    push = steps[steps.transport.isin(["sse", "ws"])]
    assert (push["latency_p99_ms"] < 500).all()
    samples = pd.read_csv(small_run / "samples.csv")
    assert set(samples["role"]) == {"target", "generator"}
    assert set(samples["transport"]) == {"poll", "sse", "ws"}
    assert (samples["phase"] == "measure").any()


def test_summary_has_every_headline_figure(small_run: Path) -> None:
    summary = json.loads((small_run / "summary.json").read_text())
    for transport in ("poll", "sse", "ws"):
        figures = summary["transports"][transport]
        assert FIXED_FIELDS <= set(figures), transport
        assert figures["max_connections"] == 60
        lo, hi = figures["mem_per_conn_ci95"]
        assert lo <= figures["mem_per_conn_bytes"] <= hi
        assert set(figures["delivery_ms"]) == {"p50", "p95", "p99"}
        assert figures["errors"] == 0
    # Holding a stream costs the server memory per connection; both push transports show it.
    assert summary["transports"]["sse"]["mem_per_conn_bytes"] > 0
    assert summary["transports"]["ws"]["mem_per_conn_bytes"] > 0


def test_report_embeds_the_figures(small_run: Path) -> None:
    html = (small_run / "report.html").read_text()
    assert html.count("plotly.js v") == 1  # the library inlined once: it opens with no network
    assert html.count('class="plotly-graph-div"') >= 4
    for transport in ("poll", "sse", "ws"):
        assert transport in html


@pytest.mark.solo  # Chromium (tests/solo.py)
def test_the_report_of_a_real_run_reads_cold_in_a_browser(small_run: Path, tmp_path: Path) -> None:
    """The report as a person opens it: one sentence per transport first, every chart drawn, the capacity
    table inside a laptop-wide window, and a full-page screenshot kept next to the run (report.png)."""
    from tests.reports.browser import CHROMIUM, Browser
    from tests.reports.test_report_browser import CHARTS_DRAWN

    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    meta = json.loads((small_run / "meta.json").read_text())
    # The bundled target runs on this machine's clock: no note about clock offsets.
    assert not any("server's own timestamps" in note for note in meta["notes"])
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=1300, height=900, deviceScaleFactor=1, mobile=False)
        browser.open((small_run / "report.html").as_uri(), CHARTS_DRAWN, "the report's charts")
        sentences = browser.eval('Array.from(document.querySelectorAll("#summary li")).map(e => e.textContent)')
        for name in ("Delta polling", "SSE", "WebSocket"):
            line = next((s for s in sentences if s.startswith((name + ":", name + " ("))), None)
            assert line is not None, sentences
            assert re.search(r"\d connections\d* at p99 <= ", line) and "on the wire" in line, line
        # The headline table fits a 1300 px window: no column is scrolled out of sight.
        fits = browser.eval('(function () { var t = document.querySelector("#headline table"); '
                            'return t.getBoundingClientRect().right <= document.documentElement.clientWidth; })()')
        assert fits
        names = browser.eval('Array.from(document.querySelectorAll("#headline tbody tr td:first-child"))'
                             '.map(e => e.textContent)')
        assert names == ["Delta polling", "SSE", "WebSocket"]
        shot = small_run / "report.png"
        browser.screenshot(shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 100_000
    finally:
        browser.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_refuses_an_unreachable_target(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--host", f"http://127.0.0.1:{_closed_port()}", "--out-dir", str(tmp_path), "--name", "x",
                 "--steps", "1", "--hold", "1", "--settle", "0"])
    assert code == 3
    assert "target check failed" in capsys.readouterr().err
    assert json.loads((tmp_path / "x" / "meta.json").read_text())["notes"]


def _exit_code(argv: list[str]) -> int:
    """What the command exits with, whether argparse exits or main returns."""
    try:
        return main(argv)
    except SystemExit as exit:
        return int(exit.code)


@pytest.mark.parametrize("args", [["--transports", "poll,carrier-pigeon"], ["--steps", "10,-1"], ["--hold", "0"],
                                  ["--hold", "2", "--settle", "3"], ["--target-pid", "1"]])
def test_bad_options_are_rejected_before_anything_runs(tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture) -> None:
    assert _exit_code(["run", "--out-dir", str(tmp_path), *args]) == 2
    assert "error" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_run_against_an_adapter_that_rtcap_starts_and_publishes_into_over_http(tmp_path: Path) -> None:
    """A user's own server, as an adapter: rtcap starts it and publishes into it."""
    adapter = tmp_path / "mine.toml"
    adapter.write_text("""
name = "mine"
base_url = "http://127.0.0.1:{port}"
[publish]
mode = "http"
url = "/publish?channel={channel}"
headers = { "Content-Type" = "application/json" }
body = '{{"pad": "{padding}"}}'
rate = 10
[transports.sse]
url = "/sse?channel={channel}"
[process]
start = ["{python}", "-m", "rtcap.targets.reference", "--port", "{port}", "--rate", "0"]
ready_url = "/healthz"
""")
    code = main(["run", "--target", str(adapter), "--transports", "sse", "--steps", "5,10,15", "--hold", "3",
                 "--settle", "1", "--settle-max", "0", "--out-dir", str(tmp_path), "--name", "mine"])
    assert code == 0
    steps = pd.read_csv(tmp_path / "mine" / "steps.csv")
    # The reference server publishes nothing by itself here (--rate 0): every event came from rtcap's publisher.
    for _, row in steps.iterrows():
        assert row["msgs_per_s"] == pytest.approx(10 * row["users"], rel=0.25)
    meta = json.loads((tmp_path / "mine" / "meta.json").read_text())
    assert meta["target"]["kind"] == "adapter" and meta["target"]["publish"] == "http"
    assert meta["target"]["name"] == "mine"


def test_run_against_an_unobserved_server_says_memory_is_unavailable(reference_url: str, tmp_path: Path) -> None:
    adapter = tmp_path / "blind.toml"
    adapter.write_text(f"""
name = "blind"
base_url = "{reference_url}"
[publish]
mode = "self"
[transports.ws]
url = "/ws?channel={{channel}}"
[process]
none = true
""")
    code = main(["run", "--target", str(adapter), "--transports", "ws", "--steps", "4,8,12", "--hold", "3",
                 "--settle", "1", "--settle-max", "0", "--out-dir", str(tmp_path), "--name", "blind"])
    assert code == 0
    run = tmp_path / "blind"
    note = "memory per connection unavailable: the adapter observes no process (process.none)"
    meta = json.loads((run / "meta.json").read_text())
    assert note in meta["notes"]
    # The server stamps its own events: the report says how far apart the clocks can be.
    assert meta["target"]["checks"]["ws"]["ok"] and meta["target"]["checks"]["ws"]["receive_minus_ts_ms"] < 1000
    assert any("server's own timestamps" in n for n in meta["notes"])
    ws = json.loads((run / "summary.json").read_text())["transports"]["ws"]
    assert ws["mem_per_conn_bytes"] is None and ws["msgs_per_s"] > 0
    assert note in (run / "report.html").read_text()
    steps = pd.read_csv(run / "steps.csv")
    assert (steps["connections"] == steps["users"]).all()  # counted by the clients instead


def test_two_generator_processes_agree_with_one(small_run: Path, tmp_path: Path) -> None:
    """`--processes 2`: a Locust master and two workers; the master merges their rows into the same figures."""
    code = main(["run", "--processes", "2", "--transports", "sse", "--steps", "20,40,60", "--hold", "4",
                 "--settle", "1", "--settle-max", "0", "--rate", "5", "--out-dir", str(tmp_path), "--name", "two"])
    assert code == 0
    record = tmp_path / "two" / "locust" / "sse"
    # The master writes the one merged timeline; the workers ship their rows to it and write nothing.
    assert [p.name for p in record.glob("timeline*.jsonl")] == ["timeline.jsonl"]
    lagged = [row for row in read_timeline(record / "timeline.jsonl") if row["transport"] == "generator"]
    assert sum(row["lag_samples"] for row in lagged) > 0  # both workers' loop lag, merged
    two = pd.read_csv(tmp_path / "two" / "steps.csv")
    one = pd.read_csv(small_run / "steps.csv").query("transport == 'sse'")
    assert list(two["connections"]) == list(one["connections"]) == [20, 40, 60]
    for a, b in zip(two["msgs_per_s"], one["msgs_per_s"]):
        assert a == pytest.approx(b, rel=0.1)
    samples = pd.read_csv(tmp_path / "two" / "samples.csv")
    assert samples.query("role == 'generator'")["pid"].nunique() == 3  # master and two workers
