"""Each package has a README whose module table names every module in it, and no module that is gone."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["bench", "loadtests", "loadtests/transports", "loadtests/generator", "loadtests/run", "reports", "targets",
            "targets/reference"]


@pytest.mark.parametrize("package", PACKAGES)
def test_readme_lists_every_module(package: str) -> None:
    folder = ROOT / package
    text = (folder / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `?([\w]+\.py)`? \|", text, re.M))
    modules = {p.name for p in folder.glob("*.py") if p.name != "__init__.py"}
    assert modules - listed == set(), "modules missing from the README's table"
    assert listed - modules == set(), "the README's table names modules that are gone"
