"""Tests for rtcap.reports.summary: summary.json from steps.csv + meta.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from rtcap.reports.rundir import RunDirError
from rtcap.reports.summary import write_summary

FIXED_FIELDS = {
    "max_connections", "mem_per_conn_bytes", "mem_per_conn_ci95", "mem_per_conn_r2",
    "mem_per_conn_uss_bytes", "baseline_rss_bytes", "fit_points", "delivery_ms", "rps",
    "msgs_per_s", "bytes_per_event", "errors", "lost", "duplicated", "reordered",
    "capacity_at_slo", "capacity_at_slo_users", "warnings",
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_write_summary_fields_and_truth(run_dir: Path, truth: dict) -> None:
    before = {n: digest(run_dir / n) for n in ("steps.csv", "samples.csv", "meta.json")}
    summary = write_summary(run_dir)
    assert {n: digest(run_dir / n) for n in before} == before  # inputs are never modified
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert summary["name"] == "baseline"
    assert summary["slo"] == truth["slo"]
    assert list(summary["transports"]) == ["poll", "sse", "ws", "state"]
    for transport, t in truth["transports"].items():
        s = summary["transports"][transport]
        assert FIXED_FIELDS <= set(s), FIXED_FIELDS - set(s)
        assert set(s["delivery_ms"]) == {"p50", "p95", "p99"}
        assert s["mem_per_conn_bytes"] == pytest.approx(t["slope"], rel=1e-3)
        lo, hi = s["mem_per_conn_ci95"]
        assert lo < t["slope"] < hi
        assert s["mem_per_conn_uss_bytes"] == pytest.approx(t["slope"], rel=1e-3)
        assert s["baseline_rss_bytes"] == pytest.approx(t["base"], rel=1e-3)
        assert s["mem_per_conn_r2"] > 0.999
        # Invalid steps (saturated sse, lagging state) and the unsettled ws step are left out.
        assert s["fit_points"] == t["fit_points"]
        assert (s["capacity_at_slo"], s["capacity_at_slo_users"]) == t["capacity"]
        # Only poll met the SLO at its highest step: its capacity is a floor, not the limit.
        assert s["capacity_is_lower_bound"] is (transport == "poll")
        assert s["delivery_ms"]["p99"] == t["p99"][-1]  # highest-load valid step
        assert isinstance(s["errors"], int) and s["lost"] == 1 and s["reordered"] == 2


def test_invalid_step_counts_for_max_connections_only(run_dir: Path, truth: dict) -> None:
    sse = write_summary(run_dir)["transports"]["sse"]
    assert sse["max_connections"] == truth["invalid"]["users"]
    assert sse["at_step"] == {"step": 5, "users": 3200, "connections": 3200}
    assert sse["msgs_per_s"] == pytest.approx(3200 * 30 / 30)
    assert "1 step invalid: load generator saturated (CPU >= 90% of a core)" in sse["warnings"]
    assert write_summary(run_dir)["transports"]["poll"]["warnings"] == []


def test_push_and_poll_throughput_at_top_step(run_dir: Path) -> None:
    s = write_summary(run_dir)["transports"]
    assert s["poll"]["rps"] == pytest.approx(3200 * 10 / 30)
    assert s["ws"]["msgs_per_s"] == pytest.approx(4800 * 30 / 30)
    assert s["ws"]["errors"] == round(0.002 * 2400) + round(0.05 * 4800)


def test_bytes_per_event_is_delivered_weighted(make_run, run_dir: Path) -> None:
    steps = pd.read_csv(run_dir / "steps.csv")
    steps = steps[steps["transport"] == "ws"].reset_index(drop=True)
    steps["delivered"] = [100, 100, 100, 100, 100, 500]
    steps["bytes_per_event"] = [100.0, 100.0, 100.0, 100.0, float("nan"), 200.0]
    s = write_summary(make_run("weighted", steps))["transports"]["ws"]
    assert s["bytes_per_event"] == pytest.approx((4 * 100 * 100 + 500 * 200) / 900)


def test_too_few_points_gives_nulls_and_warning(make_run, run_dir: Path) -> None:
    steps = pd.read_csv(run_dir / "steps.csv")
    steps = steps[(steps["transport"] == "ws") & (steps["step"] < 2)]
    s = write_summary(make_run("short", steps))["transports"]["ws"]
    for key in ("mem_per_conn_bytes", "mem_per_conn_ci95", "mem_per_conn_r2",
                "mem_per_conn_uss_bytes", "baseline_rss_bytes"):
        assert s[key] is None, key
    assert s["fit_points"] == 0
    assert any("need >= 3" in w for w in s["warnings"])


def test_all_invalid_gives_null_latency(make_run, run_dir: Path) -> None:
    steps = pd.read_csv(run_dir / "steps.csv")
    steps = steps[steps["transport"] == "poll"].assign(valid=False, flags="generator_saturated")
    s = write_summary(make_run("bad", steps))["transports"]["poll"]
    assert s["delivery_ms"] == {"p50": None, "p95": None, "p99": None}
    assert s["rps"] is None and s["capacity_at_slo"] is None
    assert "6 steps invalid: load generator saturated (CPU >= 90% of a core)" in s["warnings"]
    text = (run_dir.parent / "bad" / "summary.json").read_text()
    assert "NaN" not in text


def test_missing_slo_is_run_dir_error(run_dir: Path) -> None:
    meta = json.loads((run_dir / "meta.json").read_text())
    del meta["slo"]["error_rate"]
    (run_dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RunDirError, match="meta.json: 'slo' lacks numeric key"):
        write_summary(run_dir)
    assert not (run_dir / "summary.json").exists()


def test_missing_column_is_run_dir_error(run_dir: Path) -> None:
    pd.read_csv(run_dir / "steps.csv").drop(columns=["connections"]).to_csv(run_dir / "steps.csv",
                                                                           index=False)
    with pytest.raises(RunDirError, match="missing column.*connections"):
        write_summary(run_dir)


def test_listed_transport_without_steps_stays_visible(run_dir: Path) -> None:
    meta = json.loads((run_dir / "meta.json").read_text())
    meta["transports"] = ["ws", "chat", "sse", "poll"]
    (run_dir / "meta.json").write_text(json.dumps(meta))
    summary = write_summary(run_dir)
    assert list(summary["transports"]) == ["ws", "chat", "sse", "poll", "state"]
    chat = summary["transports"]["chat"]
    assert FIXED_FIELDS <= set(chat)
    assert chat["max_connections"] is None and chat["capacity_at_slo"] is None and chat["errors"] == 0
    assert chat["warnings"] == ["no steps recorded in steps.csv"]


NEW_FIELDS = ("bytes_per_client_5min", "overhead_per_client_5min", "payload_per_client_5min",
              "missed_ticks", "generator_lag_p99_ms")


def test_per_client_bytes_missed_ticks_and_lag(run_dir: Path, truth: dict) -> None:
    summary = write_summary(run_dir)
    on_disk = json.loads((run_dir / "summary.json").read_text())["transports"]
    # Medians over valid steps, hand-computed in test_wire.py's EXPECTED.
    expected = {"state": (729_000, 129_000, 600_000), "poll": (99_000, 69_000, 30_000),
                "sse": (39_000, 18_000, 21_000), "ws": (36_000, 16_200, 19_800)}
    for transport, values in expected.items():
        s = summary["transports"][transport]
        assert FIXED_FIELDS | set(NEW_FIELDS) <= set(on_disk[transport])
        assert [s[k] for k in NEW_FIELDS[:3]] == pytest.approx(list(values))
    state = summary["transports"]["state"]
    assert state["missed_ticks"] == sum(truth["missed"]["state"]) + truth["lagging"]["missed"]
    assert state["generator_lag_p99_ms"] == truth["lagging"]["lag_p99"]
    assert summary["transports"]["poll"]["missed_ticks"] == 0
    assert summary["transports"]["sse"]["generator_lag_p99_ms"] == 30.0


def test_generator_lag_and_unsettled_warnings(run_dir: Path) -> None:
    s = write_summary(run_dir)["transports"]
    # The limit quoted is the run's own (meta.json slo), not a default.
    assert "1 step invalid: load generator lagging (timer lag p99 above 100 ms)" in s["state"]["warnings"]
    lag = [w for w in s["state"]["warnings"] if w.startswith("load generator lagging at 1 step")]
    assert len(lag) == 1 and "(timer lag p99 up to 250 ms, limit 100 ms)" in lag[0]
    assert not any("lagging" in w for t in ("poll", "sse", "ws") for w in s[t]["warnings"])
    assert s["ws"]["warnings"] == ["1 step left out of the memory fit: target memory had not settled "
                                   "within the maximum settle time"]


def test_unsettled_fallback_warning(make_run, run_dir: Path) -> None:
    steps = pd.read_csv(run_dir / "steps.csv")
    steps.loc[(steps["transport"] == "ws") & (steps["step"] >= 2), "flags"] = "memory_unsettled"
    s = write_summary(make_run("unsettled", steps))["transports"]["ws"]
    assert s["fit_points"] == 6
    assert ("4 steps with memory not settled; fewer than 3 settled steps remain, so the memory fit "
            "uses all 6 valid steps, unsettled ones included") in s["warnings"]


def test_old_run_without_new_columns(old_run_dir: Path, truth: dict) -> None:
    summary = write_summary(old_run_dir)
    assert list(summary["transports"]) == ["poll", "sse", "ws"]
    for transport, s in summary["transports"].items():
        assert FIXED_FIELDS <= set(s)
        assert s["mem_per_conn_bytes"] == pytest.approx(truth["transports"][transport]["slope"], rel=1e-3)
        assert s["fit_points"] == 6
        # Wire totals come from bytes_received + bytes_sent; what was never recorded stays null.
        assert s["overhead_per_client_5min"] is None and s["payload_per_client_5min"] is None
        assert s["missed_ticks"] is None and s["generator_lag_p99_ms"] is None
    assert summary["transports"]["poll"]["bytes_per_client_5min"] == pytest.approx(99_000)


@pytest.mark.parametrize(("text", "markdown"), [
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("a|b", "a\\|b"),
    ("`code` [link](http://example.com) C:\\runs", "\\`code\\` \\[link](http://example.com) C:\\\\runs"),
    ("R&D &lt;b&gt;", "R&amp;D &amp;lt;b&amp;gt;"),  # an entity written by a server shows as written
    ("> quoted", "&gt; quoted"),
    ("two\nlines\r\n## heading", "two lines ## heading"),
    ("p99 <= 1,000 ms (CPU >= 90% of a core) & more", "p99 <= 1,000 ms (CPU >= 90% of a core) & more"),
    ("a<=b x>y", "a&lt;=b x&gt;y"),
])
def test_md_text_keeps_text_from_becoming_markup(text: str, markdown: str) -> None:
    from rtcap.reports.summary import md_text

    assert md_text(text) == markdown


def test_md_code_and_markdown_values() -> None:
    from rtcap.reports.summary import Markdown, md_code, md_text

    assert md_code("sse.delivery.p99<5s") == "`sse.delivery.p99<5s`"  # literal inside a code span
    assert md_code("a`b|c") == "``a`b\\|c``" and md_code("`x") == "`` `x ``"
    assert md_text(Markdown("**FAILED**")) == "**FAILED**" and md_text(md_code("a|b")) == "`a\\|b`"
    assert md_text(3.5) == "3.5"
