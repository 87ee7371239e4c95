"""rtcap installs its folders as rtcap.loadtests, rtcap.reports, rtcap.targets and rtcap.bench: generic
top-level names such as `reports` or `targets` would collide with other distributions' packages."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("loadtests", "reports", "targets", "bench")


def test_every_package_folder_is_installed() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    found = sorted("rtcap." + ".".join(init.parent.relative_to(ROOT).parts)
                   for folder in FOLDERS for init in (ROOT / folder).rglob("__init__.py"))
    assert sorted(setuptools["packages"]) == found


def test_no_module_imports_a_bare_top_level_name() -> None:
    bare = re.compile(r"^\s*(from|import) (" + "|".join(FOLDERS) + r")\b", re.M)
    offenders = [str(path.relative_to(ROOT)) for folder in (*FOLDERS, "tests") for path in (ROOT / folder).rglob("*.py")
                 if bare.search(path.read_text(encoding="utf-8"))]
    offenders += ["locustfile.py"] if bare.search((ROOT / "locustfile.py").read_text(encoding="utf-8")) else []
    assert offenders == []
