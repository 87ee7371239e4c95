"""Tests for rtcap.reports.rundir: loading and validating run directories."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rtcap.reports.rundir import RunDirError, load_run, load_runs
from rtcap.reports.schema import STEP_COLUMNS


def test_load_run_types(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert run.name == "baseline" and run.path == run_dir and run.summary is None
    assert run.meta["slo"]["delivery_p99_ms"] == 1000.0
    assert set(STEP_COLUMNS) <= set(run.steps.columns)
    assert run.steps["valid"].dtype == bool
    assert run.steps["valid"].sum() == len(run.steps) - 2
    assert run.steps["connections"].dtype == float
    assert set(run.steps["flags"]) == {"", "generator_saturated", "generator_lagging", "memory_unsettled"}
    assert run.steps["payload_bytes"].dtype == float and run.steps["missed_ticks"].sum() == 53
    assert set(run.steps["settled"]) == {"true", "false"}
    assert set(run.samples["role"]) == {"target", "generator"}


def test_empty_numbers_become_nan(run_dir: Path) -> None:
    text = (run_dir / "steps.csv").read_text().splitlines()
    header = text[0].split(",")
    cells = text[1].split(",")
    cells[header.index("latency_p99_ms")] = ""
    cells[header.index("valid")] = ""
    (run_dir / "steps.csv").write_text("\n".join([text[0], ",".join(cells), *text[2:]]) + "\n")
    steps = load_run(run_dir).steps
    assert pd.isna(steps.loc[0, "latency_p99_ms"])
    assert bool(steps.loc[0, "valid"]) is True  # unknown validity is not a reason to drop a step


def test_missing_dir_is_run_dir_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="not a run directory"):
        load_run(tmp_path / "nope")


@pytest.mark.parametrize("name", ["meta.json", "steps.csv"])
def test_missing_file_named(run_dir: Path, name: str) -> None:
    (run_dir / name).unlink()
    with pytest.raises(RunDirError, match=f"{name}: file not found"):
        load_run(run_dir)


def test_samples_optional(run_dir: Path) -> None:
    (run_dir / "samples.csv").unlink()
    assert load_run(run_dir).samples.empty


def test_missing_columns_listed(run_dir: Path) -> None:
    df = pd.read_csv(run_dir / "steps.csv").drop(columns=["rss_bytes", "valid"])
    df.to_csv(run_dir / "steps.csv", index=False)
    with pytest.raises(RunDirError, match=r"steps.csv: missing column\(s\): rss_bytes, valid"):
        load_run(run_dir)


def test_bad_json(run_dir: Path) -> None:
    (run_dir / "meta.json").write_text("{not json")
    with pytest.raises(RunDirError, match="meta.json: not valid JSON"):
        load_run(run_dir)
    (run_dir / "meta.json").write_text("[]")
    with pytest.raises(RunDirError, match="expected a JSON object"):
        load_run(run_dir)


def test_non_boolean_valid(run_dir: Path) -> None:
    df = pd.read_csv(run_dir / "steps.csv")
    df["valid"] = df["valid"].astype(str)
    df.loc[0, "valid"] = "maybe"
    df.to_csv(run_dir / "steps.csv", index=False)
    with pytest.raises(RunDirError, match="non-boolean value 'maybe'"):
        load_run(run_dir)


def test_empty_steps_file(run_dir: Path) -> None:
    (run_dir / "steps.csv").write_text("")
    with pytest.raises(RunDirError, match="steps.csv: empty file"):
        load_run(run_dir)


def test_load_runs_overlays_with_run_column(run_dir: Path, second_run_dir: Path) -> None:
    steps, samples, runs = load_runs([run_dir, second_run_dir])
    assert [r.name for r in runs] == ["baseline", "tuned"]
    assert list(dict.fromkeys(steps["run"])) == ["baseline", "tuned"]
    assert len(steps) == len(runs[0].steps) + len(runs[1].steps)
    assert set(samples["run"]) == {"baseline", "tuned"}
    both = steps[(steps["transport"] == "sse") & (steps["step"] == 0)].set_index("run")["rss_bytes"]
    assert both["tuned"] == pytest.approx(both["baseline"] * 1.1)


def test_load_runs_disambiguates_same_name(make_run, run_dir: Path) -> None:
    other = make_run("copy")
    meta = (other / "meta.json").read_text().replace('"name": "copy"', '"name": "baseline"')
    (other / "meta.json").write_text(meta)
    steps, _, runs = load_runs([run_dir, other])
    assert [r.name for r in runs] == ["baseline", "baseline (copy)"]
    assert steps["run"].nunique() == 2


def test_load_runs_requires_one(tmp_path: Path) -> None:
    with pytest.raises(RunDirError):
        load_runs([])


# Truncated and damaged files: refused with the file and line, never read as if complete ----------------------

def _cut(path: Path, drop: int) -> None:
    """Drop the last `drop` bytes of `path`, as a crash or a full disk mid-write would."""
    data = path.read_bytes()
    path.write_bytes(data[:-drop])


@pytest.mark.parametrize("drop", [20, 200])
def test_a_steps_file_cut_mid_row_is_refused(run_dir: Path, drop: int) -> None:
    lines = (run_dir / "steps.csv").read_text().splitlines()
    _cut(run_dir / "steps.csv", drop)
    with pytest.raises(RunDirError, match=rf"steps.csv: line {len(lines)}: \d+ cells where the header has "
                                          rf"{len(lines[0].split(','))}; the file is truncated"):
        load_run(run_dir)


@pytest.mark.parametrize("drop", [1, 2])
def test_a_steps_file_without_its_last_line_end_is_refused(run_dir: Path, drop: int) -> None:
    """drop=1 keeps every cell; drop=2 cuts the last cell short, which still parses: both are cut off."""
    lines = (run_dir / "steps.csv").read_text().splitlines()
    _cut(run_dir / "steps.csv", drop)
    with pytest.raises(RunDirError, match=rf"steps.csv: line {len(lines)}: no line end: the file is truncated"):
        load_run(run_dir)


def test_a_header_cut_short_is_refused(run_dir: Path) -> None:
    header = (run_dir / "steps.csv").read_text().splitlines()[0]
    (run_dir / "steps.csv").write_text(header[:40])
    with pytest.raises(RunDirError, match="steps.csv: line 1: no line end"):
        load_run(run_dir)


def test_a_row_with_extra_cells_is_refused(run_dir: Path) -> None:
    text = (run_dir / "steps.csv").read_text().splitlines()
    (run_dir / "steps.csv").write_text("\n".join([text[0], text[1] + ",1,2", *text[2:]]) + "\n")
    with pytest.raises(RunDirError, match=r"steps.csv: line 2: \d+ cells where the header has"):
        load_run(run_dir)


def test_a_samples_file_cut_short_is_refused(run_dir: Path) -> None:
    _cut(run_dir / "samples.csv", 7)
    with pytest.raises(RunDirError, match=r"samples.csv: line \d+: "):
        load_run(run_dir)


@pytest.mark.parametrize("name", ["meta.json", "summary.json"])
def test_a_json_file_cut_short_names_its_line(run_dir: Path, name: str) -> None:
    from rtcap.reports.summary import write_summary

    write_summary(run_dir)
    _cut(run_dir / name, 15)
    with pytest.raises(RunDirError, match=rf"{name}: not valid JSON at line \d+ column \d+ .*truncated or damaged"):
        load_run(run_dir)


def test_complete_files_with_crlf_line_ends_load(run_dir: Path) -> None:
    path = run_dir / "steps.csv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert len(load_run(run_dir).steps) > 0


@pytest.mark.parametrize(("column", "value"), [("rss_bytes", "abc"), ("latency_p99_ms", "12ms"),
                                               ("missed_ticks", "lots")])
def test_a_number_cell_with_text_is_refused(run_dir: Path, column: str, value: str) -> None:
    df = pd.read_csv(run_dir / "steps.csv", dtype=str, keep_default_na=False)
    df.loc[2, column] = value
    df.to_csv(run_dir / "steps.csv", index=False)
    with pytest.raises(RunDirError, match=rf"steps.csv: line 4: column {column} has '{value}', not a number"):
        load_run(run_dir)


@pytest.mark.parametrize("column", ["step", "users"])
def test_a_step_without_its_key_is_refused(run_dir: Path, column: str) -> None:
    df = pd.read_csv(run_dir / "steps.csv", dtype=str, keep_default_na=False)
    df.loc[0, column] = ""
    df.to_csv(run_dir / "steps.csv", index=False)
    with pytest.raises(RunDirError, match=rf"steps.csv: line 2: column {column} has '', not a number"):
        load_run(run_dir)


def test_nan_and_empty_cells_stay_unknown(run_dir: Path) -> None:
    df = pd.read_csv(run_dir / "steps.csv", dtype=str, keep_default_na=False)
    df.loc[0, "rss_bytes"], df.loc[1, "cpu_percent"] = "nan", ""
    df.to_csv(run_dir / "steps.csv", index=False)
    steps = load_run(run_dir).steps
    assert pd.isna(steps.loc[0, "rss_bytes"]) and pd.isna(steps.loc[1, "cpu_percent"])


@pytest.mark.parametrize(("name", "data", "says"), [
    ("meta.json", {"transports": "sse"}, "'transports' must be a list, got str"),
    ("meta.json", {"options": 5}, "'options' must be an object, got int"),
    ("summary.json", {"transports": 5}, "'transports' must be an object, got int"),
    ("summary.json", {"transports": {"sse": 5}}, "transports sse: each must be an object of figures"),
])
def test_json_of_the_wrong_shape_is_refused(run_dir: Path, name: str, data: dict, says: str) -> None:
    import json

    path = run_dir / name
    base = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**base, **data}))
    with pytest.raises(RunDirError, match=f"{name}: {says}"):
        load_run(run_dir)
