"""The `report` subcommand: render one HTML report from one or more run directories."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from reports.html import render_report
from reports.rundir import RunDirError

PROG = "rtcap report"


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `report` arguments (run directories, -o/--output) to `parser`."""
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                        help="run directory (runs/<name>); several runs are overlaid in one report")
    parser.add_argument("-o", "--output", type=Path, default=None, metavar="FILE.html",
                        help="where to write the report (default: <first run>/report.html)")


def run_report(args: argparse.Namespace) -> int:
    """Render the report described by parsed `args`; return the process exit code."""
    out = args.output if args.output is not None else Path(args.runs[0]) / "report.html"
    try:
        path = render_report(list(args.runs), out)
    except RunDirError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Unwritable output is the user's to fix, not a crash worth a traceback.
        print(f"{PROG}: error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (`python -m reports.cli RUN...`)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    add_report_arguments(parser)
    return run_report(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
