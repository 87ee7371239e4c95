"""Small shared pieces of the report page: HTML escaping, HTML tables and markdown tables (number formats: units.py)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import pandas as pd

TEXT_COLUMNS = ("run", "transport", "figure", "polling", "push", "verdict", "runs")


def esc(value: Any) -> str:
    """Escape any value read from a run directory for HTML text or attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def table(frame: pd.DataFrame, titles: Sequence[Sequence[str]] | None = None) -> str:
    """A plain HTML table with every cell escaped; `titles` (same shape) become cell tooltips."""
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = []
        for j, (c, v) in enumerate(zip(frame.columns, row)):
            cls = ' class="text"' if c in TEXT_COLUMNS else ""
            tip = titles[i][j] if titles is not None and titles[i][j] else ""
            cells.append(f'<td{cls}{f" title={chr(34)}{esc(tip)}{chr(34)}" if tip else ""}>{esc(v)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def md_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table; every header and cell goes through md_text (Markdown cells as they are)."""
    from rtcap.reports.summary import md_text

    lines = ["| " + " | ".join(md_text(c) for c in frame.columns) + " |",
             "| " + " | ".join("---" for _ in frame.columns) + " |"]
    lines += ["| " + " | ".join(md_text(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
