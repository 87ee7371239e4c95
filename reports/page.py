"""Small shared pieces of the report: HTML escaping and tables, and number formats with units."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from rtcap.reports.figures import KIB, fmt_num
from rtcap.reports.wire import finite

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


def _sig3(x: float) -> str:
    """Three significant digits, trailing zeros kept: 25.0, 308, 1.25."""
    a = abs(x)
    return f"{x:,.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 1 else f"{x:.2g}"


def fmt_cpu(core_seconds: Any) -> str:
    """CPU time of one unit of work: '50.6 µs', '308 µs', '1.25 ms'; unknown is an en dash."""
    f = finite(core_seconds)
    if f is None:
        return "–"
    us = f * 1e6
    return f"{_sig3(us / 1000)} ms" if abs(us) >= 1000 else f"{_sig3(us)} µs"


def fmt_kib(value: Any) -> str:
    """Bytes as KiB with one decimal, no unit (the caller says KiB once)."""
    return fmt_num(value, 1, KIB)


def fmt_seconds(value: Any) -> str:
    """An interval: '1 s', '2.5 s', '500 ms'."""
    f = finite(value)
    if f is None:
        return "–"
    return f"{f * 1000:,.0f} ms" if f < 1 else f"{f:,.3g} s"


def fmt_ratio(value: Any) -> str:
    """A count such as updates per poll interval: 3 significant digits, infinity as '∞'."""
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    f = finite(value)
    if f is None:
        return "–"
    return _sig3(f)


def fmt_rate(per_s: Any) -> str:
    """An update rate: '1/s', '0.2/s', '6/min' below 0.1/s."""
    f = finite(per_s)
    if f is None:
        return "–"
    if 0 < f < 0.1:
        return f"{f * 60:.3g}/min"
    return f"{f:,.3g}/s"


def fmt_pct(fraction: Any) -> str:
    """A fraction as a percentage: 0.01 -> '1%'."""
    f = finite(fraction)
    return "–" if f is None else f"{f * 100:g}%"
