"""The README's Quickstart keeps exactly two commands, and CI runs the test one verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the Quickstart has a bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quickstart_has_two_commands_run_and_test() -> None:
    run, test = quickstart_commands()
    assert run.endswith("rtcap run")
    assert re.search(r"/pytest( |$)", test)


def test_ci_runs_the_readme_test_command() -> None:
    _run, test = quickstart_commands()
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_example_ci_workflow_is_valid_and_its_rtcap_command_parses() -> None:
    import shlex

    import yaml

    from rtcap.loadtests.cli import build_parser
    from rtcap.reports.gate import gather

    text = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text.split("## In CI", 1)[1], re.S)
    assert block, "the CI section has a yaml block"
    workflow = yaml.safe_load(block.group(1))
    steps = workflow["jobs"]["rtcap"]["steps"]
    command = next(s["run"] for s in steps if "rtcap run" in s.get("run", ""))
    argv = shlex.split(command)
    args = build_parser().parse_args(argv[argv.index("run"):])
    assert args.abort_early and len(gather(args.thresholds, environ={}, directory=ROOT / "tests")) == 6
    uploaded = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert uploaded["with"]["path"] == f"runs/{args.name}"
