"""Tests for rtcap.reports.cli: the `report` subcommand."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import pytest

from rtcap.reports.cli import add_report_arguments, main, run_report


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


def _truncate(run_dir: Path) -> None:
    data = (run_dir / "steps.csv").read_bytes()
    (run_dir / "steps.csv").write_bytes(data[:-25])


def test_a_truncated_run_is_refused_not_rendered(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _truncate(run_dir)
    assert run_report(parse([str(run_dir)])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rtcap report: error: {run_dir / 'steps.csv'}: line ") and "truncated" in err
    assert len(err.splitlines()) == 1
    assert not (run_dir / "report.html").exists()


def test_rtcap_report_exits_2_on_a_truncated_run_in_one_line(run_dir: Path) -> None:
    import subprocess

    _truncate(run_dir)
    rtcap = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "rtcap"
    done = subprocess.run([str(rtcap), "report", str(run_dir), "--format", "md"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("rtcap report: error: ")


def test_an_unwritable_output_is_bad_input(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2, not 1: 1 means a threshold was missed."""
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "report.html"
    assert main([str(run_dir), "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"rtcap report: error: cannot write {out}: {out.parent} is not a directory"


def test_a_failed_write_keeps_the_previous_report(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A disk that fills up mid-write leaves the previous report, not half of the new one."""
    out = tmp_path / "out" / "r.md"
    out.parent.mkdir()
    out.write_text("previous\n")
    write_text = Path.write_text

    def half_then_full(self: Path, text: str, *args: object, **kwargs: object) -> None:
        write_text(self, text[:len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_full)
    assert main([str(run_dir), "-o", str(out)]) == 2
    monkeypatch.undo()
    assert out.read_text() == "previous\n" and [p.name for p in out.parent.iterdir()] == ["r.md"]
    assert capsys.readouterr().err.strip() == f"rtcap report: error: cannot write {out}: No space left on device"
