"""The report as a user sees it: the page of a fixture run opened in headless Chromium, every chart drawn,
and a full-page screenshot saved next to the run (report.png) for a person to look at."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from rtcap.reports.html import render_report
from tests.reports.browser import Browser, needs_browser

pytestmark = [needs_browser, pytest.mark.solo]  # Chromium: alone (tests/solo.py)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Every plotly div has drawn its main <svg>: plotly.js ran from the inlined copy, offline.
CHARTS_DRAWN = ('Array.from(document.querySelectorAll(".plotly-graph-div")).every(function (d) '
                '{ return d.querySelector("svg.main-svg") !== null; })')


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_renders_and_is_screenshotted(browser: Browser, run_dir: Path) -> None:
    page = render_report([run_dir], run_dir / "report.html")
    browser.open(page.as_uri(), CHARTS_DRAWN, "the report's charts")
    divs = browser.eval('document.querySelectorAll(".plotly-graph-div").length')
    assert divs == 6  # five per-connection figures and connections vs requests
    drawn = browser.eval('Array.from(document.querySelectorAll(".plotly-graph-div")).map(function (d) '
                         '{ return d.querySelectorAll("svg.main-svg .scatterlayer .trace").length; })')
    assert all(n > 0 for n in drawn), drawn  # each chart drew its traces, not just empty axes
    # Nothing was fetched: plotly.js and the data are in the page.
    assert browser.eval('performance.getEntriesByType("resource").length') == 0
    # The headline sentences come first, and each figure in them says where it came from.
    first = browser.eval('document.querySelector("body > section").id')
    assert first == "summary"
    tips = browser.eval('Array.from(document.querySelectorAll("#summary .fact")).map(function (s) '
                        '{ return s.title; })')
    assert len(tips) >= 16 and all(tips)
    shot = run_dir / "report.png"
    data = browser.screenshot(shot)
    width, height = png_size(shot.read_bytes())
    assert shot.stat().st_size == len(data) > 100_000
    # Full page, not the 800x600 viewport: taller than the six charts stacked.
    assert width >= 780 and height > 6 * 460
