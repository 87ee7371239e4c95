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
    assert test.endswith("pytest")


def test_ci_runs_the_readme_test_command() -> None:
    _run, test = quickstart_commands()
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()
