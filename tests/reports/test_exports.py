"""`rtcap report --format json|md`: what the exports hold, where they go, and the combinations refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rtcap.loadtests.cli import main as rtcap_main
from rtcap.reports.cli import main
from rtcap.reports.gate import RESULTS_FILE
from tests.reports.conftest import MIB


def strict(text: str) -> Any:
    """Parse JSON, refusing NaN and Infinity as other tools would."""
    def bad(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=bad)


def test_json_holds_summary_model_wire_and_comparison(run_dir: Path, second_run_dir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(run_dir), str(second_run_dir), "--format", "json"]) == 0
    data = strict(capsys.readouterr().out)
    assert data["format"] == "rtcap-report" and [r["name"] for r in data["runs"]] == ["baseline", "tuned"]
    run = data["runs"][0]
    assert run["summary"]["transports"]["sse"]["capacity_at_slo"] == 1600
    assert run["meta"]["host"]["hostname"] == "bench-1"
    sse = run["model"]["sse"]
    assert sse["unit"] == "event" and sse["kind"] == "push"
    mem = sse["memory"]
    assert mem["slope_bytes_per_connection"] == pytest.approx(20480, rel=1e-3)
    assert mem["intercept_bytes"] == pytest.approx(50 * MIB, rel=1e-3)
    assert mem["ci95_bytes"][0] <= mem["slope_bytes_per_connection"] <= mem["ci95_bytes"][1]
    assert mem["r2"] > 0.99 and mem["points"] == 6 and mem["steps"] == [0, 1, 2, 3, 4, 5]
    assert sse["cpu"]["core_seconds_per_event"] == pytest.approx(1e-4)
    assert sse["bytes"]["per_event"] == pytest.approx(130)
    poll = run["model"]["poll"]
    assert poll["cpu"]["core_seconds_per_request"] == pytest.approx(3e-4)
    assert poll["bytes"]["per_request"] == pytest.approx(990)
    assert poll["bytes"]["overhead_per_request"] == pytest.approx(690)
    assert run["headlines"][1]["text"].startswith("SSE: 1,600 connections")
    assert all(f["source"] for h in run["headlines"] for f in h["facts"])
    assert run["connections_vs_requests"]["break_even"][0]["cpu"]["per_interval"] == pytest.approx(3.0)
    wire = {(w["run"], w["transport"]): w for w in data["wire"]}
    assert wire["baseline", "ws"]["bytes_per_event"] == pytest.approx(120)
    mem_rows = [c for c in data["comparison"] if c["figure"] == "memory per connection" and c["transport"] == "sse"]
    assert mem_rows[0]["verdict"] == "higher" and mem_rows[0]["run_b"] == "tuned"


def test_markdown_summary(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "summary.md"
    assert main([str(run_dir), "-o", str(out)]) == 0  # the suffix picks the format
    assert capsys.readouterr().out.strip() == str(out)
    md = out.read_text(encoding="utf-8")
    assert md.startswith("## rtcap report: baseline\n\n- Delta polling (every 3 s): 3,200 connections")
    assert "- SSE: 1,600 connections at p99 <= 1,000 ms on one process" in md
    assert "| transport | capacity at SLO | memory/conn (95% CI) |" in md
    assert ("| SSE | 1,600 | 20.0 KiB (20.0-20.0) | 1,500 ms at 3,200 conns | 100 µs per event | 130 B per event |"
            in md)
    assert "**Connections vs requests.** Against delta polling every 3 s" in md
    assert "### Bytes on the wire per client, per 5 minutes" in md
    assert "| WebSocket | 15.8 KiB | 5.8 ms | 19.3 KiB | 35.2 KiB | baseline | 120 B | 6 of 6 |" in md
    assert "### Warnings" in md and "- sse: 1 step invalid: load generator saturated" in md
    assert "Differences between runs" not in md and "<" not in md.replace("<=", "")  # no HTML in it


def test_markdown_compares_runs(run_dir: Path, second_run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rtcap_main(["report", str(run_dir), str(second_run_dir), "--format", "md", "-o", "-"]) == 0
    md = capsys.readouterr().out
    assert "- **baseline** · SSE: 1,600 connections" in md and "- **tuned** · SSE:" in md
    assert "### Differences between runs (against baseline)" in md
    assert "| SSE | memory per connection | 20.0 KiB | 22.0 KiB | +2.0 KiB, +10.0% | higher |" in md


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "md", "-o", "out.html"], "--format md but -o out.html ends in .html"),
    (["--format", "json", "-o", "out.md"], "--format json but -o out.md ends in .md"),
    (["-o", "-"], "the html report is not written to standard output"),
    (["--format", "html", "-o", "-"], "the html report is not written to standard output"),
])
def test_bad_combinations_exit_2(run_dir: Path, args: list[str], message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(run_dir), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rtcap report: error: ") and message in err
    assert not (run_dir / "report.html").exists()


def test_output_directory_and_unknown_format(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(run_dir), "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([str(run_dir), "--format", "pdf"])
    assert exc.value.code == 2 and "invalid choice: 'pdf'" in capsys.readouterr().err


def test_explicit_format_with_any_name(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.txt"
    assert main([str(run_dir), "--format", "json", "-o", str(out)]) == 0
    assert strict(out.read_text())["runs"][0]["name"] == "baseline"


def test_server_provided_text_reaches_summary_md_as_text(make_run, run_dir: Path) -> None:
    from rtcap.reports.exports import publish_markdown
    from tests.reports.conftest import meta_for

    steps = pd.read_csv(run_dir / "steps.csv")
    steps = steps[steps["transport"].isin(["poll", "ws"])].copy()
    evil = "<img src=x onerror=alert(1)>|ws"  # a transport name from an adapter
    steps.loc[steps["transport"] == "ws", "transport"] = evil
    meta = meta_for("hostile", ["poll", evil])
    meta["notes"] = ["server said: <script>alert(1)</script>", "a|b `tick` [x](http://example.com)\n## injected"]
    meta["target"]["checks"] = {"ws": "<script>alert(2)</script>"}
    run = make_run("hostile", steps, meta=meta)
    (run / RESULTS_FILE).write_text(json.dumps([{"threshold": "ws.delivery.p99<1s|x", "metric": "delivery_p99_ms",
                                                 "observed": 5.0, "ok": False, "detail": "<b>500</b> body a|b"}]))
    assert publish_markdown(run, {}) == [run / "summary.md"]
    md = (run / "summary.md").read_text(encoding="utf-8")
    for raw in ("<script>", "<img", "<b>", "a|b", "`tick`", "\n## injected"):
        assert raw not in md, raw
    assert "- note: server said: &lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "- note: a\\|b \\`tick\\` \\[x](http://example.com) ## injected" in md
    assert "| &lt;img src=x onerror=alert(1)&gt;\\|ws | 2,400 |" in md  # still one cell of its table row
    assert "| `ws.delivery.p99<1s\\|x` | 5 | **FAILED** | &lt;b&gt;500&lt;/b&gt; body a\\|b |" in md
    assert "at p99 <= 1,000 ms" in md  # our own words stay as they were
    tables = [line for line in md.splitlines() if line.startswith("| ")]
    for line in tables:  # every row of a table has as many cells as its header
        assert line.replace("\\|", "").count("|") in {h.count("|") for h in tables}, line


def test_every_format_says_where_the_target_samples_came_from(make_run: Any, run_dir: Path) -> None:
    from rtcap.reports.content import build_report
    from rtcap.reports.exports import report_json, report_markdown
    from rtcap.reports.html import render_html

    samples = pd.read_csv(run_dir / "samples.csv")
    remote = make_run("remote", samples=samples.assign(source="agent:http://10.0.0.5:9120"))
    said = "Target samples from agent:http://10.0.0.5:9120."
    report = build_report([remote])
    assert report_json(report)["runs"][0]["target_samples"] == said
    assert f"- {said}" in report_markdown(report)
    assert f"payload 64 B · {said}</dd>" in render_html(report)
    old = build_report([run_dir])  # samples.csv without the column: said so, not guessed
    assert old.sampled_from["baseline"] == "Target samples: source not recorded (written before rtcap recorded it)."
