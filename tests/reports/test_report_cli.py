"""Tests for reports.cli: the `report` subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pytest

from reports.cli import add_report_arguments, main, run_report


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rtcap report")
    add_report_arguments(parser)
    return parser.parse_args(argv)


def test_arguments() -> None:
    args = parse(["runs/a", "runs/b", "-o", "x.html"])
    assert args.runs == [Path("runs/a"), Path("runs/b")] and args.output == "x.html" and args.format is None
    assert parse(["runs/a"]).output is None
    with pytest.raises(SystemExit):
        parse([])


def test_default_output_in_first_run(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_report(parse([str(run_dir)])) == 0
    out = run_dir / "report.html"
    assert out.is_file()
    assert capsys.readouterr().out.strip() == str(out)


def test_explicit_output(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reports" / "r.html"
    assert main([str(run_dir), "--output", str(out)]) == 0
    assert out.is_file() and capsys.readouterr().out.strip() == str(out)


def test_missing_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_report(parse([str(tmp_path / "missing")])) == 2
    err = capsys.readouterr().err
    assert err.startswith("rtcap report: error: ") and "missing" in err and "not a run directory" in err


def test_missing_column(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps = pd.read_csv(run_dir / "steps.csv").drop(columns=["latency_p99_ms"])
    steps.to_csv(run_dir / "steps.csv", index=False)
    assert run_report(parse([str(run_dir)])) == 2
    err = capsys.readouterr().err
    assert "rtcap report: error:" in err and "steps.csv: missing column(s): latency_p99_ms" in err
    assert not (run_dir / "report.html").exists()
