"""Tests for rtcap.reports.plan and rtcap.reports.plan_cli: units, formulas (hand-computed), models, the CLI."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rtcap.loadtests.cli import main as rtcap_main
from rtcap.reports import plan
from rtcap.reports.plan import (PlanInputError, PlanInputs, connections_at_slo, plan_transport, run_models,
                          transport_model)
from rtcap.reports.plan_cli import fmt_range, main
from rtcap.reports.rundir import load_run
from rtcap.reports.units import fmt_int_or_no_limit
from tests.reports.conftest import MIB, TRUTH, truth_steps

ROOT = Path(__file__).resolve().parents[2]
GIB = 1024**3


@pytest.mark.parametrize(("parse", "text", "value"), [
    (plan.parse_rate, "1/s", 1.0), (plan.parse_rate, "10/min", 10 / 60), (plan.parse_rate, "0.5", 0.5),
    (plan.parse_rate, "2 / hours", 2 / 3600), (plan.parse_rate, "3/sec", 3.0),
    (plan.parse_duration, "1s", 1.0), (plan.parse_duration, "500ms", 0.5), (plan.parse_duration, "10s", 10.0),
    (plan.parse_duration, "2min", 120.0), (plan.parse_duration, "0.25", 0.25), (plan.parse_duration, "1 h", 3600),
    (plan.parse_size, "4GiB", 4 * GIB), (plan.parse_size, "512MiB", 512 * MIB), (plan.parse_size, "4G", 4 * GIB),
    (plan.parse_size, "4gb", 4e9), (plan.parse_size, "1 Ki", 1024), (plan.parse_size, "2048", 2048),
    (plan.parse_count, "100000", 100000), (plan.parse_count, "100k", 100000), (plan.parse_count, "1.5M", 1.5e6),
    (plan.parse_count, "100,000", 100000), (plan.parse_count, "2.5", 3),  # half up, as in the page
    (plan.parse_headroom, "20%", 0.2), (plan.parse_headroom, "0.1", 0.1), (plan.parse_headroom, "0", 0.0),
    (plan.parse_cores, "2", 2.0), (plan.parse_cores, "0.5 cores", 0.5),
])
def test_units(parse: Any, text: str, value: float) -> None:
    assert parse(text) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize(("parse", "text"), [
    (plan.parse_rate, "fast"), (plan.parse_rate, "1/ms"), (plan.parse_rate, "0/s"), (plan.parse_rate, "-1/s"),
    (plan.parse_duration, "1 fortnight"), (plan.parse_duration, "0s"), (plan.parse_duration, ""),
    (plan.parse_size, "4 gigs"), (plan.parse_size, "0GiB"), (plan.parse_count, "0"), (plan.parse_count, "lots"),
    (plan.parse_headroom, "100%"), (plan.parse_headroom, "20"), (plan.parse_cores, "0"),
])
def test_bad_units(parse: Any, text: str) -> None:
    with pytest.raises(PlanInputError, match="cannot read .* use e.g."):
        parse(text)


def test_inputs_out_of_range() -> None:
    with pytest.raises(PlanInputError, match="headroom"):
        PlanInputs(viewers=1, update_rate=1, freshness_s=1, instance_memory=GIB, headroom=1.0)


# A push model with numbers chosen so every step below is exact in binary floating point.
MODEL: dict[str, Any] = {
    "run": "r", "transport": "sse", "unit": "message", "work": "update",
    "memory": {"slope": 10240.0, "slope_lo": 8192.0, "slope_hi": 12288.0, "baseline": 100.0 * MIB},
    "cpu": {"per_unit": 2.0**-12, "per_unit_lo": 2.0**-13, "per_unit_hi": 2.0**-11, "idle_cores": 0.5},
    "bandwidth": {"per_unit": 100.0, "per_unit_lo": 90.0, "per_unit_hi": 110.0},
    "slo": {"delivery_p99_ms": 1000.0, "error_rate": 0.01},
    "slo_steps": [[1000, 50.0, 1000], [2000, 200.0, 2000], [4000, 900.0, 4000]],
    "top_users": 8000,
}
INPUTS = PlanInputs(viewers=1e6, update_rate=2.0, freshness_s=1.0, instance_memory=GIB,
                    instance_cores=2.0, headroom=0.25)


def test_push_plan_by_hand() -> None:
    p = plan_transport(MODEL, INPUTS)
    assert p["available"] and p["work_per_s"] == 2e6  # 1M viewers x 2 updates/s
    # Memory: 1 GiB x 0.75 - 100 MiB = 668 MiB per instance, / 8, 10 and 12 KiB per connection.
    assert p["per_instance"]["memory"] == [85504, 68403, 57002]
    # CPU: 2 cores x 0.75 - 0.5 idle = 1 core, / (2^-13, 2^-12, 2^-11 core-s per message x 2/s).
    assert p["per_instance"]["cpu"] == [4096, 2048, 1024]
    assert p["per_instance"]["connections"] == [4000, 4000, 4000]  # p99 900 ms <= 1 s freshness
    assert p["instances_by"] == {"memory": [12, 15, 18], "cpu": [245, 489, 977],
                                 "connections": [250, 250, 250]}
    assert p["instances"] == [250, 489, 977] and p["binding"] == ["cpu"]
    # n x baseline + slope x viewers; n x idle + CPU per message x messages/s; messages/s x bytes.
    assert p["memory_bytes"] == [250 * 100 * MIB + 8192e6, 489 * 100 * MIB + 10240e6, 977 * 100 * MIB + 12288e6]
    assert p["cpu_cores"] == [125 + 244.140625, 244.5 + 488.28125, 488.5 + 976.5625]
    assert p["bandwidth_bytes_per_s"] == [1.8e8, 2e8, 2.2e8]
    assert p["bandwidth_month_bytes"] == [1.8e8 * 2592000, 2e8 * 2592000, 2.2e8 * 2592000]
    assert not p["connections_lower_bound"] and p["latency_limit_ms"] == 1000


def test_freshness_sets_the_push_latency_limit() -> None:
    tight = plan_transport(MODEL, PlanInputs(**{**INPUTS.as_dict(), "freshness_s": 0.1}))
    assert tight["per_instance"]["connections"] == [1000] * 3  # only the 50 ms step is fresh enough
    assert tight["instances"] == [1000, 1000, 1000] and tight["binding"] == ["connections"]
    none = plan_transport(MODEL, PlanInputs(**{**INPUTS.as_dict(), "freshness_s": 0.01}))
    assert not none["available"]
    assert none["why"] == "no valid step had delivery p99 <= 10 ms with error rate <= 0.01"


def test_polling_plan_by_hand() -> None:
    poll = {**MODEL, "transport": "poll", "unit": "request", "work": "freshness", "top_users": 4000}
    # Polling every 0.5 s: 2 requests/s per viewer, the same CPU per viewer as 2 updates/s above.
    p = plan_transport(poll, PlanInputs(**{**INPUTS.as_dict(), "update_rate": 99.0, "freshness_s": 0.5}))
    assert p["work_per_s"] == 2e6 and p["per_instance"]["cpu"] == [4096, 2048, 1024]
    # Staleness was measured at the run's own interval: the run's SLO, not the freshness, limits.
    assert p["per_instance"]["connections"] == [4000] * 3 and p["latency_limit_ms"] == 1000
    assert p["connections_lower_bound"]  # the top step met the SLO: measured, not the real limit
    # ...so it does not bind: memory and CPU decide, and the measured count says how many stay measured.
    by = p["instances_by"]
    assert p["instances"] == [max(by["memory"][i], by["cpu"][i]) for i in range(3)]
    assert "connections" not in p["binding"]
    assert p["instances_within_measured"] == [max(by[r][i] for r in by) for i in range(3)]
    roomy = plan_transport(poll, PlanInputs(**{**INPUTS.as_dict(), "freshness_s": 0.5, "instance_cores": 64}))
    assert roomy["binding"] == ["memory"] and roomy["instances_within_measured"][1] > roomy["instances"][1]
    fresher = plan_transport(poll, PlanInputs(**{**INPUTS.as_dict(), "freshness_s": 0.01}))
    assert fresher["available"] and fresher["work_per_s"] == 1e8


def test_unmeasured_and_infeasible() -> None:
    no_mem = {**MODEL, "memory": {"why": "no memory fit: target memory was not sampled"}}
    p = plan_transport(no_mem, INPUTS)
    assert not p["available"] and p["why"] == "no memory fit: target memory was not sampled"
    small = plan_transport(MODEL, PlanInputs(**{**INPUTS.as_dict(), "instance_memory": 100 * MIB}))
    assert not small["available"] and "cannot hold a single viewer: its memory" in small["why"]
    free = copy.deepcopy(MODEL)
    free["memory"]["slope_lo"] = -100.0  # a CI reaching below 0: memory never binds at the low end
    p = plan_transport(free, INPUTS)
    assert p["per_instance"]["memory"][0] is None and p["instances_by"]["memory"][0] == 1
    assert p["memory_bytes"][0] == 250 * 100 * MIB
    no_bw = plan_transport({**MODEL, "bandwidth": {"why": "no wire bytes"}}, INPUTS)
    assert no_bw["available"] and no_bw["bandwidth_bytes_per_s"] == [None] * 3
    json.dumps(plan.plan([MODEL, no_mem, free], INPUTS), allow_nan=False)  # strict JSON throughout


def test_fmt_range() -> None:
    assert fmt_range([1, 1, 1], fmt_int_or_no_limit) == "1"
    assert fmt_range([6189, 3122, 2088], fmt_int_or_no_limit) == "3,122 (2,088–6,189)"
    assert fmt_range([None, 5, 3], fmt_int_or_no_limit) == "5 (3–no limit)"


def test_models_from_truth_run(run_dir: Path) -> None:
    models = {m["transport"]: m for m in run_models(load_run(run_dir))}
    assert list(models) == ["poll", "sse", "ws", "state"]
    # The fixture's CPU is 5% + users/100 %: 1e-4 core-s per message (1 message/s per user), 3e-4 per
    # request (1/3 request/s per user). Invalid steps are left out of the fit.
    for t, per in (("sse", 1e-4), ("ws", 1e-4), ("poll", 3e-4), ("state", 3e-4)):
        cpu = models[t]["cpu"]
        assert cpu["per_unit"] == pytest.approx(per, rel=1e-9) and cpu["idle_cores"] == pytest.approx(0.05)
        assert cpu["per_unit_lo"] == pytest.approx(per, rel=1e-6) == cpu["per_unit_hi"]
    # Wire bytes: sse 30 events x 120 B + 1 request x 300 B per 30 events; poll 30 x 300 + 10 x 90 per 10.
    assert models["sse"]["bandwidth"]["per_unit"] == pytest.approx(130)
    assert models["poll"]["bandwidth"]["per_unit"] == pytest.approx(990)
    assert models["state"]["bandwidth"]["per_unit"] == pytest.approx(7290)
    assert (models["poll"]["unit"], models["poll"]["work"]) == ("request", "freshness")
    assert (models["sse"]["unit"], models["sse"]["work"]) == ("message", "update")
    for t, m in models.items():
        assert m["memory"]["slope"] == pytest.approx(TRUTH[t]["slope"], rel=0.02)
        assert m["memory"]["baseline"] == pytest.approx(TRUTH[t]["base"], rel=0.01)
        # At freshness 1 s (the run's SLO p99) the limit is the run's own capacity at SLO.
        conns, lower, _ = connections_at_slo(m, INPUTS)
        assert conns == TRUTH[t]["capacity"][0], t
        assert lower == (t == "poll")
    assert not (run_dir / "summary.json").exists()  # planning never writes into the run


def test_no_process_sampled(make_run: Any, capsys: pytest.CaptureFixture[str]) -> None:
    steps = truth_steps()
    steps[["rss_bytes", "uss_bytes", "cpu_percent"]] = np.nan
    run = make_run("no-process", steps)
    assert main([str(run), *ARGS, "--format", "json"]) == 0
    plans = {p["transport"]: p for p in json.loads(capsys.readouterr().out)["plans"]}
    assert not plans["sse"]["available"]
    assert plans["sse"]["why"].startswith("no memory fit: target memory was not sampled")
    assert "no CPU fit: target CPU was not sampled" in plans["sse"]["why"]
    assert main([str(run), *ARGS]) == 0
    assert "unavailable: no memory fit: target memory was not sampled" in capsys.readouterr().out


ARGS = ["--viewers", "100k", "--update-rate", "1/s", "--freshness", "1s", "--instance-memory", "4GiB"]


def test_cli_table(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(run_dir), *ARGS, "--instance-cores", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("capacity plan from run baseline")
    assert "100,000 viewers, update rate 1/s, freshness 1 s; instance 4.0 GiB, 2 cores, 20% headroom" in out
    header = next(line for line in out.splitlines() if line.startswith("transport"))
    for col in ("instances", "binds", "by memory", "by CPU", "by conns", "memory", "CPU cores", "bandwidth"):
        assert col in header
    # sse: 1,600 connections at SLO bind: ceil(100,000 / 1,600) = 63 instances.
    sse = next(line for line in out.splitlines() if line.startswith("sse "))
    assert " 63 " in sse and "connections at SLO" in sse
    assert "connections at SLO (3,200) is a lower bound" in out  # poll met the SLO at every step
    assert "how:" in out and "instances = max over resources" in out


def test_cli_json_matches_the_model(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(run_dir), *ARGS, "--transports", "ws,sse", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["transport"] for p in data["plans"]] == ["ws", "sse"]
    inputs = PlanInputs(viewers=1e5, update_rate=1, freshness_s=1, instance_memory=4 * GIB)
    assert data["inputs"] == inputs.as_dict()
    assert data["plans"] == [plan_transport(m, inputs) for m in data["models"]]
    assert data["plans"][1]["instances"] == [63, 63, 63] and data["formulas"] == plan.FORMULAS


@pytest.mark.parametrize(("option", "value"), [
    ("--update-rate", "fast"), ("--freshness", "1 fortnight"), ("--instance-memory", "4 gigs"),
    ("--viewers", "-5"), ("--headroom", "150%"), ("--instance-cores", "none"),
])
def test_cli_bad_units(run_dir: Path, option: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(run_dir), *ARGS]
    if option not in args:
        args += [option, ""]
    args[args.index(option) + 1] = value
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"rtcap plan: error: argument {option}: cannot read '{value}'" in err and "use e.g." in err


def test_cli_bad_run(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing"), *ARGS]) == 2
    assert "rtcap plan: error:" in capsys.readouterr().err
    assert main([str(run_dir), *ARGS, "--transports", "sse,carrier-pigeon"]) == 2
    assert "no carrier-pigeon in this run (it has poll, sse, ws, state)" in capsys.readouterr().err


def test_rtcap_dispatches_plan(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rtcap_main(["plan", str(run_dir), *ARGS, "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["plans"]) == 4


def test_no_traceback_on_bad_input(run_dir: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "rtcap.loadtests.cli", "plan", str(run_dir), *ARGS[:-1], "4 gigs"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot read '4 gigs' as a memory size" in proc.stderr


def test_summary_json_is_used_when_present(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rtcap.reports.summary import write_summary

    summary = write_summary(run_dir)
    summary["transports"]["sse"]["mem_per_conn_bytes"] = None  # what the report shows, the plan uses
    (run_dir / "summary.json").write_text(json.dumps(summary))
    assert main([str(run_dir), *ARGS, "--format", "json"]) == 0
    sse = next(p for p in json.loads(capsys.readouterr().out)["plans"] if p["transport"] == "sse")
    assert not sse["available"] and sse["why"].startswith("no memory fit")


def test_report_embeds_the_models(rendered_report: tuple[Path, Path]) -> None:
    run, out = rendered_report
    page = out.read_text(encoding="utf-8")
    assert page.index('id="wire"') < page.index('id="planner"') < page.index('id="fig-memory"')
    data = json.loads(re.search(r'<script type="application/json" id="plan-model">(.*?)</script>', page).group(1))
    assert data["models"] == run_models(load_run(run))  # the very model `rtcap plan RUN` uses
    assert data["units"]["size"]["gib"] == GIB and not data["multi"]


def test_planner_json_cannot_close_its_script(make_run: Any, tmp_path: Path) -> None:
    from rtcap.reports.html import render_report

    run = make_run("evil")
    meta = json.loads((run / "meta.json").read_text())
    meta["name"] = "</script><script>alert(1)</script>"
    (run / "meta.json").write_text(json.dumps(meta))
    page = render_report([run], tmp_path / "r.html").read_text(encoding="utf-8")
    planner = page[page.index('<section id="planner">'):page.index('id="fig-memory"')]
    assert "alert(1)</script>" not in planner and "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)" in planner


def test_a_viewer_holding_two_connections_costs_two_in_the_plan() -> None:
    steps = pd.DataFrame([{"transport": "signal", "step": i, "users": u, "connections": 2.0 * u, "valid": True,
                           "error_rate": 0.0, "latency_p99_ms": 50.0, "msgs_per_s": float(u), "rps": 0.0,
                           "cpu_percent": 1.0 + u / 100, "delivered": u * 10, "requests": u * 10,
                           "bytes_received": u * 5000.0, "bytes_sent": u * 100.0}
                          for i, u in enumerate((50, 100, 200))])
    summary = {"mem_per_conn_bytes": 28_000.0, "mem_per_conn_ci95": [27_000.0, 29_000.0],
               "baseline_rss_bytes": 50e6, "mem_per_conn_r2": 1.0, "fit_points": 3}
    m = transport_model("r", "signal", steps, summary, {"delivery_p99_ms": 1000, "error_rate": 0.01})
    assert m["connections_per_viewer"] == 2
    assert (m["memory"]["slope"], m["memory"]["slope_lo"]) == (56_000.0, 54_000.0)  # per viewer
    assert [s[0] for s in m["slo_steps"]] == [50, 100, 200]  # viewers held, not connections
