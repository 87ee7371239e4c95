"""`rtcap plan` refuses bad input with exit 2 and one line: out-of-range figures and truncated runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtcap.reports.plan_cli import (
    FRESHNESS_RANGE_S,
    MAX_INSTANCE_CORES,
    MAX_INSTANCE_MEMORY,
    MAX_VIEWERS,
    UPDATE_RATE_RANGE,
    main,
)

ARGS = ["--viewers", "100k", "--update-rate", "1/s", "--freshness", "1s", "--instance-memory", "4GiB"]


def _with(option: str, value: str) -> list[str]:
    args = list(ARGS)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    return args


@pytest.mark.parametrize(("option", "value"), [
    ("--viewers", "1e400"), ("--viewers", "1e300"), ("--viewers", f"{MAX_VIEWERS * 10}"),
    ("--update-rate", "1e300"), ("--update-rate", "1e-300"), ("--freshness", "1e-300"), ("--freshness", "1e300"),
    ("--freshness", "100000s"),
    ("--instance-memory", "1e300"), ("--instance-memory", "1e400"), ("--instance-cores", "1e300"),
])
def test_figures_past_what_a_plan_is_made_for_are_refused(run_dir: Path, option: str, value: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([str(run_dir), *_with(option, value)])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"rtcap plan: error: argument {option}: '{value}' is out of range: must be ")


@pytest.mark.parametrize(("option", "value"), [
    ("--viewers", f"{MAX_VIEWERS}"), ("--update-rate", f"{UPDATE_RATE_RANGE[0]}"), ("--update-rate", "1000"),
    ("--freshness", f"{FRESHNESS_RANGE_S[0]}"), ("--freshness", "86400s"),
    ("--instance-memory", f"{MAX_INSTANCE_MEMORY}"), ("--instance-cores", f"{MAX_INSTANCE_CORES}"),
])
def test_the_bounds_themselves_plan(run_dir: Path, option: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(run_dir), *_with(option, value), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["plans"]


def test_a_truncated_run_is_refused(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = (run_dir / "steps.csv").read_bytes()
    (run_dir / "steps.csv").write_bytes(data[:-25])
    assert main([str(run_dir), *ARGS]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"rtcap plan: error: {run_dir / 'steps.csv'}: line ")
    assert len(captured.err.splitlines()) == 1


def test_a_summary_of_the_wrong_shape_is_refused(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run_dir / "summary.json").write_text(json.dumps({"transports": {"sse": 5}}))
    assert main([str(run_dir), *ARGS]) == 2
    assert "summary.json: transports sse: each must be an object of figures" in capsys.readouterr().err
