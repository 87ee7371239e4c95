"""Every option is declared once (loadtests/options.py): `rtcap run`'s parser, RunOptions, the argv handed to
Locust, Locust's parser, the users' Settings and meta.json must agree on every option's value."""

import json
import subprocess
import sys
from dataclasses import asdict, fields
from pathlib import Path

from rtcap.loadtests import options as declared
from rtcap.loadtests.cli import build_parser
from rtcap.loadtests.run.sweep import RunOptions, locust_command
from rtcap.targets.adapter import load_adapter, reference_adapter_path

CHANGED = {
    # A value other than the default for every forwarded option, as `rtcap run` would be given it.
    "--steps": "7,9", "--hold": "11", "--settle": "3", "--settle-max": "40", "--spawn-rate": "55",
    "--ramp-timeout": "45", "--channel": "news", "--poll-interval": "2.5", "--no-conditional-get": None,
    "--chat-rate": "0.7", "--request-rate": "3", "--typing-rate": "2", "--room-size": "4",
    "--max-message-bytes": "4096", "--max-body-bytes": "8192", "--head-timeout": "12",
    "--on-worker-loss": "continue", "--source-ips": "127.0.0.2-127.0.0.3", "--held-per-user": "7",
}


def _locust_settings(argv: list[str]) -> dict:
    """Locust's own parser (with rtcap's options registered), then the Settings the users read."""
    code = (
        "import json, sys\n"
        "from locust.argument_parser import parse_options\n"
        "import rtcap.loadtests.generator.options as o\n"
        "parsed = parse_options(sys.argv[1:])\n"
        "class Env: parsed_options = parsed\n"
        "import dataclasses\n"
        "print(json.dumps(dataclasses.asdict(o.Settings.of(Env())), default=str))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # Locust may print a warning first


def _run_options(argv: list[str], monkeypatch, tmp_path: Path) -> RunOptions:
    """`rtcap run ARGV` up to the RunOptions it would run, without running it."""
    import rtcap.loadtests.run.sweep as sweep

    seen: list[RunOptions] = []

    def capture(options: RunOptions, say=None) -> Path:
        seen.append(options)
        raise sweep.RunError("captured")

    monkeypatch.setattr(sweep, "run_sweep", capture)
    monkeypatch.setattr("rtcap.loadtests.cli._preflight", lambda runs, base: None)
    from rtcap.loadtests.cli import main

    assert main(["run", "--out-dir", str(tmp_path), *argv]) == 3
    return seen[0]


def test_every_run_option_is_a_runoptions_field_with_the_declared_default() -> None:
    names = {f.name for f in fields(RunOptions)}
    assert {o.dest for o in declared.RUN} <= names
    defaults = asdict(RunOptions(name="x"))
    for option in declared.OPTIONS:
        if option.dest in defaults and option.dest != "name":  # the name is given, or made from the time
            assert defaults[option.dest] == option.default, option.dest


def test_run_parser_lists_every_declared_run_option() -> None:
    text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()  # noqa: SLF001
    for option in declared.RUN:
        assert option.run in text


def test_defaults_agree_between_the_cli_the_generator_and_settings(monkeypatch, tmp_path) -> None:
    options = _run_options([], monkeypatch, tmp_path)
    adapter = load_adapter(reference_adapter_path())
    argv = locust_command(options, "sse", adapter, tmp_path, settle_samples=tmp_path / "s.jsonl")
    settings = _locust_settings(argv[argv.index("-f"):-1])
    plain = _locust_settings(["-f", "locustfile.py"])  # plain Locust: the declared defaults, nothing passed
    for option in declared.LOCUST:
        if not option.forward or not option.run:
            continue
        ran = getattr(options, option.dest)
        expected = ",".join(map(str, ran)) if isinstance(ran, list) else ran
        assert settings[option.setting] == expected, option.dest
        assert plain[option.setting] == expected, f"{option.dest}: plain Locust's default differs from rtcap run's"


def test_changed_values_reach_the_generator_and_meta(monkeypatch, tmp_path) -> None:
    argv = [arg for flag, value in CHANGED.items() for arg in ([flag] if value is None else [flag, value])]
    options = _run_options(argv, monkeypatch, tmp_path)
    adapter = load_adapter(reference_adapter_path())
    command = locust_command(options, "sse", adapter, tmp_path, settle_samples=tmp_path / "s.jsonl")
    settings = _locust_settings(command[command.index("-f"):-1])
    from rtcap.loadtests.run.sweep import _meta

    meta = json.loads(json.dumps(_meta(options, adapter, "start", None, []), default=str))["options"]
    forwarded = [o for o in declared.LOCUST if o.forward and o.run]
    assert {o.run for o in forwarded} == set(CHANGED), "every forwarded option must be exercised here"
    for option in forwarded:
        ran = getattr(options, option.dest)
        assert ran != option.default, f"{option.run} was not taken from the command line"
        expected = ",".join(map(str, ran)) if isinstance(ran, list) else ran
        assert settings[option.setting] == expected, option.dest
        assert meta[option.dest] == ran, option.dest


def test_web_ui_strings_are_parsed_like_the_command_line() -> None:
    option = declared.BY_DEST["target_pid"]
    assert option.setting_value("123") == 123
    assert option.setting_value("") is None
