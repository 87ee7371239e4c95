"""The `report` subcommand: render one or more run directories as HTML, JSON or markdown.

Exit codes: 0 written; 2 bad input (options that do not go together, a missing, truncated or malformed run
directory, an output that cannot be written), with one line on stderr. Nothing is written on error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rtcap.reports.content import build_report
from rtcap.reports.exports import dumps_json, report_markdown
from rtcap.reports.html import render_html
from rtcap.reports.rundir import RunDirError
from rtcap.reports import schema

PROG = "rtcap report"
FORMATS = ("html", "json", "md")
SUFFIXES = {".html": "html", ".htm": "html", ".json": "json", ".md": "md", ".markdown": "md"}
STDOUT = "-"


EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    """Options that do not go together (exit 2)."""


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `report` arguments (run directories, -o/--output, --format) to `parser`."""
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                        help="run directory (runs/<name>); several runs are overlaid and compared with the first")
    parser.add_argument("-o", "--output", default=None, metavar="FILE",
                        help="where to write it; '-' is standard output (json, md). Default: "
                             "<first run>/report.html for html, standard output for json and md")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="html: the self-contained page (default); json: summary, model parameters, wire "
                             "table, connections vs requests and the comparison; md: a short summary for a CI "
                             "job summary or a PR comment. Without it, -o's suffix (.html, .json, .md) decides")


def resolve_output(fmt: str | None, output: str | None, first_run: Path) -> tuple[str, Path | None]:
    """(format, file or None for standard output), or UsageError for a bad combination."""
    suffix = SUFFIXES.get(Path(output).suffix.lower()) if output not in (None, STDOUT) else None
    if fmt is None:
        fmt = suffix or "html"
    elif suffix is not None and suffix != fmt:
        raise UsageError(f"--format {fmt} but -o {output} ends in {Path(str(output)).suffix}: name the file "
                         f"*.{fmt}, or leave out --format to take the format from the name")
    if output == STDOUT or (output is None and fmt != "html"):
        if fmt == "html":
            # The page inlines ~5 MB of plotly.js: a terminal is no place for it.
            raise UsageError("the html report is not written to standard output: give -o FILE.html, "
                             "or --format json|md for text")
        return fmt, None
    path = Path(output) if output is not None else first_run / schema.REPORT_FILE
    if path.is_dir():
        raise UsageError(f"-o {output} is a directory: give a file name, e.g. {path / ('report.' + fmt)}")
    return fmt, path


def run_report(args: argparse.Namespace) -> int:
    """Render the report described by parsed `args`; return the process exit code."""
    try:
        fmt, out = resolve_output(getattr(args, "format", None), None if args.output is None else str(args.output),
                                  Path(args.runs[0]))
        report = build_report(list(args.runs))
    except (UsageError, RunDirError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    text = {"html": render_html, "json": dumps_json, "md": report_markdown}[fmt](report)
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a full disk or a kill mid-write leaves the old file, never half a report.
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    except FileExistsError:  # mkdir met a file where the directory should be
        print(f"{PROG}: error: cannot write {out}: {out.parent} is not a directory", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        # Unwritable output is the user's to fix (bad input, like a bad option), not a crash worth a traceback;
        # exit 1 would read as "a threshold was missed".
        print(f"{PROG}: error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (`python -m rtcap.reports.cli RUN...`)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    add_report_arguments(parser)
    return run_report(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
