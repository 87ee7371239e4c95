"""`rtcap run` and `rtcap check-target` refuse bad input before anything starts: exit 2 and one stderr line.

No test here may start load: an autouse fixture makes every way of starting a sweep, a scenario or a server
raise LoadStarted, so an input that slips through fails its test at once instead of running a sweep.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from rtcap.loadtests import values
from rtcap.loadtests.run import validate
from rtcap.loadtests.cli import build_parser, main
from rtcap.loadtests.generator.staircase import MAX_STEP_USERS, MAX_STEPS, parse_steps
from rtcap.targets.adapter import reference_adapter_path

ROOT = Path(__file__).resolve().parents[2]
RTCAP = ROOT / ".venv" / "bin" / "rtcap"


class LoadStarted(Exception):
    """A run got past its checks: what a refused input must never reach."""


@pytest.fixture(autouse=True)
def no_load(monkeypatch: pytest.MonkeyPatch) -> None:
    import rtcap.loadtests.run.sweep
    import rtcap.loadtests.run.scenarios
    import rtcap.targets.launch

    def started(*_: object, **__: object) -> None:
        raise LoadStarted

    # The entry points every run goes through must exist; the others are a second line of defence.
    monkeypatch.setattr(rtcap.loadtests.run.sweep, "run_sweep", started)
    monkeypatch.setattr(rtcap.loadtests.run.scenarios, "run_scenario", started)
    monkeypatch.setattr(rtcap.targets.launch, "launch", started)
    for module, name in ((rtcap.loadtests.run.sweep, "launch"), (rtcap.loadtests.run.sweep, "run_transport"), (rtcap.loadtests.run.scenarios, "run_sweep")):
        monkeypatch.setattr(module, name, started, raising=False)
    monkeypatch.delenv("RTCAP_THRESHOLDS", raising=False)


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Pretend an open-file limit of soft 1024 / hard 20000; setrlimit calls are recorded, not made."""
    calls: list[tuple[int, int]] = []
    state = {"limit": (1024, 20000)}

    def setrlimit(which: int, value: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        calls.append(value)
        state["limit"] = value

    monkeypatch.setattr(validate.resource, "getrlimit", lambda which: state["limit"])
    monkeypatch.setattr(validate.resource, "setrlimit", setrlimit)
    return calls


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `rtcap ARGV`; assert it exits 2 without starting load; return its (last) stderr line."""
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines, "no message"
    return lines[-1]


def one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Like refused(), for checks after parsing: stderr is exactly one line (no usage, no traceback)."""
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


# --name ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../x", "/tmp/rtcap-absolute-name", "a/b", ".hidden", "..", "x\x00y", "a\\b",
                                  "x" * (values.MAX_NAME_LENGTH + 1), "", "tab\there"])
def test_a_name_must_be_one_safe_path_component(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs"
    line = refused(["run", "--out-dir", str(out), "--name", name, "--steps", "1"], capsys)
    assert line.startswith("rtcap run: error: argument --name: ")
    assert not out.exists() and not (tmp_path / "x").exists() and not Path("/tmp/rtcap-absolute-name").exists()


@pytest.mark.parametrize("name", ["nightly", "run-20250101-120000", "sse_vs_ws.2", "x" * values.MAX_NAME_LENGTH])
def test_ordinary_names_pass(name: str) -> None:
    assert build_parser().parse_args(["run", "--name", name]).name == name


# --out-dir ----------------------------------------------------------------------------------------------------

def test_an_out_dir_under_a_file_is_refused_before_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    line = one_line(["run", "--out-dir", str(tmp_path / "file" / "sub"), "--steps", "1"], capsys)
    assert line == f"rtcap run: error: --out-dir {tmp_path / 'file' / 'sub'}: cannot create it: Not a directory"


def test_an_out_dir_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    line = one_line(["run", "--out-dir", str(tmp_path / "file"), "--steps", "1"], capsys)
    assert line == f"rtcap run: error: --out-dir {tmp_path / 'file'}: is a file, not a directory"


def test_an_out_dir_that_takes_no_files_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # Root passes every permission check: /proc refuses new files whoever asks.
    line = one_line(["run", "--out-dir", "/proc/self", "--steps", "1"], capsys)
    assert line.startswith("rtcap run: error: --out-dir /proc/self: cannot write into it: ")


def test_a_run_directory_in_use_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "meta.json").write_text("{}")
    line = one_line(["run", "--out-dir", str(tmp_path), "--name", "taken", "--steps", "1"], capsys)
    assert line.startswith("rtcap run: error: --name taken: ") and "already exists and is not empty" in line


def test_the_out_dir_check_leaves_no_probe_behind(tmp_path: Path) -> None:
    with pytest.raises(LoadStarted):
        main(["run", "--out-dir", str(tmp_path / "new"), "--steps", "1"])
    assert (tmp_path / "new").is_dir() and not any((tmp_path / "new").iterdir())


def test_an_unwritable_out_dir_exits_2_without_a_traceback(tmp_path: Path) -> None:
    """The console script: one line on stderr after nothing started (the target is never launched)."""
    (tmp_path / "file").write_text("x")
    done = subprocess.run([str(RTCAP), "run", "--out-dir", str(tmp_path / "file" / "sub"), "--steps", "1"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [f"rtcap run: error: --out-dir {tmp_path / 'file' / 'sub'}: cannot create it: "
                                        "Not a directory"]


# --steps --------------------------------------------------------------------------------------------------------

def test_a_huge_range_is_refused_before_it_is_built(capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(["run", "--steps", "1:10000000000:1"], capsys)
    assert line == ("rtcap run: error: argument --steps: bad steps '1:10000000000:1': 10,000,000,000 steps, "
                    f"at most {MAX_STEPS:,} are allowed")


def test_parse_steps_bounds() -> None:
    assert len(parse_steps(f"1:{MAX_STEPS}:1")) == MAX_STEPS
    assert parse_steps(str(MAX_STEP_USERS)) == [MAX_STEP_USERS]
    with pytest.raises(ValueError, match=f"at most {MAX_STEPS:,} are allowed"):
        parse_steps(f"1:{MAX_STEPS + 1}:1")
    with pytest.raises(ValueError, match=f"a step of {MAX_STEP_USERS + 1:,} users, at most {MAX_STEP_USERS:,}"):
        parse_steps(f"10,{MAX_STEP_USERS + 1}")
    with pytest.raises(ValueError, match="at most"):
        parse_steps(",".join(["5"] * (MAX_STEPS + 1)))


def test_a_step_beyond_the_hard_open_file_limit_is_refused(limits: list, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(["run", "--steps", "100000", "--transports", "sse"], capsys)
    need = 100000 + validate.FD_MARGIN
    assert line == (f"rtcap run: error: --steps: the largest step, 100,000 users (1 connection each), needs about "
                    f"{need:,} open files in one process, but this process may open at most 20,000 (soft limit 1,024, "
                    f"hard limit 20,000); raise the hard limit (ulimit -n {need} as root, LimitNOFILE={need} in a "
                    "systemd unit, nofile in /etc/security/limits.conf) or lower --steps")
    assert limits == []


def test_signalling_users_hold_two_connections(limits: list, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(["run", "--steps", "10000", "--transports", "poll,signal"], capsys)
    assert "10,000 users (2 connections each), needs about 20,100 open files" in line


def test_the_soft_limit_is_raised_when_the_hard_limit_allows(limits: list, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(LoadStarted):
        main(["run", "--steps", "500,5000", "--transports", "sse", "--out-dir", str(tmp_path)])
    assert limits == [(5000 + validate.FD_MARGIN, 20000)]
    assert f"note: raised the open-file soft limit from 1,024 to {5000 + validate.FD_MARGIN:,}" in capsys.readouterr().out


def test_workers_split_the_generator_but_not_a_started_target() -> None:
    assert validate.open_files_needed([9000], ["ws"], processes=3, starts_target=False) == 3000 + validate.FD_MARGIN
    assert validate.open_files_needed([9000], ["ws"], processes=3, starts_target=True) == 9000 + validate.FD_MARGIN
    assert validate.open_files_needed([9000], ["signal"], processes=1) == 18000 + validate.FD_MARGIN


def test_preflight_really_raises_the_soft_limit_of_its_process() -> None:
    """Without fakes, in a child whose soft limit starts low: what Locust and the target inherit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 600:
        pytest.skip(f"hard open-file limit {hard} is too low to test raising the soft one")
    code = ("import resource; from rtcap.loadtests.run.validate import preflight_open_files as p; "
            "print(p([400], ['ws'])); print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)))
    assert done.returncode == 0, done.stderr
    note, soft = done.stdout.splitlines()
    assert note == "raised the open-file soft limit from 256 to 500 for the largest step, 400 users" and soft == "500"


# numeric options ------------------------------------------------------------------------------------------------

RUN_NUMBERS = [
    ("--hold", "inf"), ("--hold", "nan"), ("--hold", "0"), ("--hold", "1e9"), ("--settle", "-1"), ("--settle", "inf"),
    ("--settle-max", "-5"), ("--settle-max", "nan"), ("--spawn-rate", "1e999"), ("--spawn-rate", "0"),
    ("--rate", "nan"), ("--rate", "0"), ("--rate", "-3"), ("--payload", "-1"), ("--payload", "1.5"),
    ("--payload", "99999999999"), ("--poll-interval", "0"), ("--poll-interval", "inf"), ("--chat-rate", "-1"),
    ("--request-rate", "-1"), ("--typing-rate", "0"), ("--room-size", "-1"), ("--target-pid", "0"),
    ("--slo-p99-ms", "inf"), ("--slo-p99-ms", "0"), ("--slo-error-rate", "5"), ("--slo-error-rate", "-0.1"),
    ("--slo-error-rate", "nan"), ("--generator-lag-limit-ms", "-1"), ("--processes", "0"), ("--processes", "100000"),
]


@pytest.mark.parametrize(("option", "value"), RUN_NUMBERS)
def test_numeric_run_options_are_range_checked(option: str, value: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(["run", "--out-dir", str(tmp_path), "--steps", "1", f"{option}={value}"], capsys)
    assert line.startswith(f"rtcap run: error: argument {option}: ")
    assert value in line  # the message quotes what was given
    assert not any(tmp_path.iterdir())


def test_range_messages_say_the_range() -> None:
    parse = values.number(float, 0, 1)
    with pytest.raises(Exception, match=r"^must be from 0 to 1, got 5$"):
        parse("5")
    with pytest.raises(Exception, match=r"^must be a finite number above 0 and at most 86,400, got 'inf'$"):
        values.number(float, 0, values.MAX_SECONDS, above=True)("inf")
    with pytest.raises(Exception, match=r"^expected a whole number, got '1.5'$"):
        values.number(int, 0)("1.5")


@pytest.mark.parametrize("argv", [["--slo-error-rate", "0"], ["--slo-error-rate", "1"], ["--chat-rate", "0"],
                                  ["--request-rate", "0"], ["--settle-max", "0"], ["--settle", "0"], ["--payload", "0"],
                                  ["--room-size", "0"], ["--hold", "0.5"], ["--processes", "2"]])
def test_boundary_values_that_mean_something_pass(argv: list[str]) -> None:
    args = build_parser().parse_args(["run", *argv])
    assert getattr(args, argv[0][2:].replace("-", "_")) == float(argv[1])


@pytest.mark.parametrize("value", ["inf", "0", "-1", "nan"])
def test_check_target_timeout_is_range_checked(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(["check-target", str(reference_adapter_path()), f"--timeout={value}"], capsys)
    assert line.startswith("rtcap check-target: error: argument --timeout: ")


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://example.org", "http://", "127.0.0.1"])
def test_host_must_be_an_http_url(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert refused(["run", "--host", url], capsys).startswith("rtcap run: error: argument --host: ")


# --server-args --------------------------------------------------------------------------------------------------

def test_server_args_the_reference_target_refuses_are_refused_before_it_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(["run", "--out-dir", str(tmp_path), "--steps", "1", "--server-args", "--bogus-flag 1"], capsys)
    assert line == ("rtcap run: error: --server-args: unrecognized arguments: --bogus-flag 1 "
                    "(see rtcap target serve --help)")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "says"), [
    ("--cache-ttl nan", "--server-args: argument --cache-ttl: "),
    ("--buffer 0", "--server-args: argument --buffer: "),
    ("--port 9", "--server-args: --port is set by rtcap run itself"),
    ("--rate 50", "--server-args: --rate is set by rtcap run itself; use rtcap run --rate"),
    ("--payload=9", "--server-args: --payload is set by rtcap run itself; use rtcap run --payload"),
    ("--help", "--server-args: --help is not an option to pass on"),
])
def test_server_args_are_judged_by_the_reference_parser(args: str, says: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(["run", "--out-dir", str(tmp_path), "--steps", "1", f"--server-args={args}"], capsys)
    assert line.startswith(f"rtcap run: error: {says}")


def test_server_args_the_reference_target_accepts_pass(tmp_path: Path) -> None:
    with pytest.raises(LoadStarted):
        main(["run", "--out-dir", str(tmp_path), "--steps", "1", "--server-args", "--cache-ttl 5 --state-bytes 8192"])


def test_an_adapter_that_starts_the_reference_target_gets_its_server_args_checked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text(reference_adapter_path().read_text().replace('name = "reference"', 'name = "mine"'))
    line = one_line(["run", "--target", str(mine), "--out-dir", str(tmp_path / "runs"), "--steps", "1",
                     "--server-args", "--bogus 1"], capsys)
    assert line.startswith("rtcap run: error: --server-args: unrecognized arguments: --bogus 1")


def test_another_server_judges_its_own_server_args(tmp_path: Path) -> None:
    adapter = ROOT / "targets" / "examples" / "websocketd" / "adapter.toml"
    with pytest.raises(LoadStarted):
        main(["run", "--target", str(adapter), "--transports", "ws", "--out-dir", str(tmp_path), "--steps", "1",
              "--server-args", "--anything-goes 1"])


def test_server_args_for_an_adapter_that_starts_nothing_are_refused(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    adapter = tmp_path / "fixed.toml"
    adapter.write_text('name = "fixed"\nbase_url = "http://127.0.0.1:9"\n[publish]\nmode = "none"\n'
                       '[transports.sse]\nurl = "/sse"\n')
    line = one_line(["run", "--target", str(adapter), "--transports", "sse", "--out-dir", str(tmp_path / "runs"),
                     "--steps", "1", "--server-args", "--cache-ttl 5"], capsys)
    assert line.startswith("rtcap run: error: --server-args: target 'fixed'") and "no process.start" in line


# --target -------------------------------------------------------------------------------------------------------

def test_a_malformed_adapter_exits_2_as_check_target_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nbase_url = 5\n[transports.sse]\nurl = 3\n')
    assert main(["check-target", str(bad)]) == 2
    capsys.readouterr()
    code = main(["run", "--target", str(bad), "--transports", "sse", "--out-dir", str(tmp_path / "runs"), "--steps", "1"])
    assert code == 2
    lines = capsys.readouterr().err.splitlines()
    # Every problem, one self-contained line each.
    assert lines == [f"rtcap run: error: {bad}: base_url: expected a string, got integer 5",
                     f"rtcap run: error: {bad}: transports.sse.url: expected a string, got integer 3"]
    assert not (tmp_path / "runs").exists()


def test_an_adapter_without_the_transports_asked_for_exits_2(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    adapter = ROOT / "targets" / "examples" / "websocketd" / "adapter.toml"
    line = one_line(["run", "--target", str(adapter), "--transports", "sse", "--out-dir", str(tmp_path), "--steps", "1"],
                    capsys)
    assert line.startswith("rtcap run: error: target 'websocketd'") and "no sse transport" in line


def test_a_missing_adapter_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(["run", "--target", str(tmp_path / "nope.toml"), "--out-dir", str(tmp_path), "--steps", "1"], capsys)
    assert line.startswith(f"rtcap run: error: {tmp_path / 'nope.toml'}: cannot read")


# scenarios ------------------------------------------------------------------------------------------------------

def test_a_scenario_checks_every_arm_before_the_first_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line(["run", "--scenario", "cache-5s", "--out-dir", str(tmp_path), "--server-args", "--bogus 1"], capsys)
    assert line.startswith("rtcap run: error: --server-args: unrecognized arguments: --bogus 1")
