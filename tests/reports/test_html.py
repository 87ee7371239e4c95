"""Tests for rtcap.reports.html: the self-contained report page."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

from rtcap.reports.headline import transport_sentence
from rtcap.reports.html import render_report

BANNER = re.compile(r"\* plotly\.js v\d+\.\d+\.\d+")


class Tags(HTMLParser):
    """Collect every tag's attributes and the text outside <script> bodies."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attrs: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        self.attrs += [(tag, k, v or "") for k, v in attrs]

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data: str) -> None:
        if not self._in_script:
            self.text.append(data)


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    return tags


def test_plotlyjs_embedded_once_and_no_network(rendered_report: tuple[Path, Path]) -> None:
    _, out = rendered_report
    page = out.read_text(encoding="utf-8")
    assert len(BANNER.findall(page)) == 1
    tags = parse(page)
    assert not [a for a in tags.attrs if a[1] in ("src", "href") and re.match(r"\s*(https?:)?//", a[2])]
    assert not [a for a in tags.attrs if a[0] == "script" and a[1] == "src"]
    outside_scripts = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)
    assert "cdn.plot.ly" not in outside_scripts
    assert page.count('class="plotly-graph-div"') == 6  # five per-connection figures, connections vs requests


def test_page_content(rendered_report: tuple[Path, Path]) -> None:
    run, out = rendered_report
    page = out.read_text(encoding="utf-8")
    text = " ".join(parse(page).text)
    assert "rtcap capacity report: baseline" in text
    for fragment in ("bench-1", "8 CPUs", "reference http://127.0.0.1:8000", "2024-05-01T10:00:00+00:00",
                     "100, 200, 400, 800, 1600, 3200", "30.0 s", "memory/conn (KiB, 95% CI)"):
        assert fragment in text, fragment
    assert ("SSE: 1,600 connections at p99 <= 1,000 ms on one process (the next step, 3,200 connections, "
            "missed it: p99 1,500 ms), 20.0 KiB each (95% CI 20.0-20.0), 100 µs CPU per delivered event, "
            "130 B on the wire per event.") in sentences(page)
    assert "WebSocket: 2,400 connections" in sentences(page)
    assert "Delta polling (every 3 s): 3,200 connections" in sentences(page)
    assert "sse: warning: 1 step invalid: load generator saturated" in text
    for heading in ("Target memory vs connections", "Throughput vs connections", "Delivery latency",
                    "Target CPU vs connections", "Target resources over time"):
        assert heading in text
    assert "slope is the memory cost of one more connection" in text
    assert json.loads((run / "summary.json").read_text())["name"] == "baseline"  # computed on demand


def test_strings_from_files_are_escaped(make_run, tmp_path: Path) -> None:
    run = make_run("evil")
    meta = json.loads((run / "meta.json").read_text())
    meta["name"] = "<script>alert(1)</script>"
    meta["host"]["hostname"] = '"><img src=x onerror=alert(1)>'
    (run / "meta.json").write_text(json.dumps(meta))
    page = render_report([run], tmp_path / "out" / "r.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert html.escape("<script>alert(1)</script>") in page


def test_two_runs_in_one_page(run_dir: Path, second_run_dir: Path, tmp_path: Path) -> None:
    out = render_report([run_dir, second_run_dir], tmp_path / "both.html")
    page = out.read_text(encoding="utf-8")
    assert len(BANNER.findall(page)) == 1
    text = " ".join(parse(page).text)
    assert "rtcap capacity report: baseline, tuned" in text
    assert sentences(page).count("SSE: 1,600 connections ") == 2
    assert 'id="comparison"' in page and page.index('id="tradeoff"') < page.index('id="comparison"')


def test_sentence_without_fit_or_capacity() -> None:
    s = {"max_connections": None, "mem_per_conn_bytes": None, "delivery_ms": {"p99": None},
         "capacity_at_slo": None, "capacity_at_slo_users": None}
    text = transport_sentence("ws", s, {"delivery_p99_ms": 250, "error_rate": 0.005})
    assert text == "WebSocket: no valid step, memory per connection not fitted."


def sentences(page: str) -> str:
    """The headline sentences as a reader sees them: tags and footnote numbers dropped, one per line."""
    lists = re.findall(r'<ul class="sentences">(.*?)</ul>', page, flags=re.S)
    assert lists
    text = re.sub(r"<sup>.*?</sup>", "", "".join(lists)).replace("</li>", "\n")
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def section_text(page: str, section_id: str) -> str:
    """Text of one <section id=...> of the page."""
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', page, flags=re.S)
    assert match, section_id
    return " ".join(parse(match.group(1)).text)


def test_wire_comparison_section(rendered_report: tuple[Path, Path]) -> None:
    _, out = rendered_report
    page = out.read_text(encoding="utf-8")
    text = section_text(page, "wire")
    assert text.startswith("Bytes on the wire per client, per 5 minutes")
    assert "median over the transport's valid steps in that run's steps.csv" in text
    for header in ("Total overhead (5 min)", "Average latency", "Data from server (5 min)",
                   "Wire total (5 min)", "Overhead ratio", "Bytes per delivered event"):
        assert header in text
    # Rows in the fixed order, values hand-computed in test_wire.py.
    assert ("Full-state polling 126.0 KiB 333 ms 585.9 KiB 711.9 KiB 8.0x 2.4 KiB 5 of 6" in text)
    assert "WebSocket 15.8 KiB 5.8 ms 19.3 KiB 35.2 KiB baseline 120 B 6 of 6" in text
    table = text[text.index("valid steps Full-state polling"):]
    assert table.index("Full-state polling") < table.index("Delta polling") < table.index("SSE") \
        < table.index("WebSocket")
    assert "Overhead unavailable" not in text
    # Placed after the findings and before the figures.
    assert page.index('id="findings"') < page.index('id="wire"') < page.index('id="fig-memory"')


def test_sentences_mention_missed_ticks_and_findings_generator_lag(rendered_report: tuple[Path, Path]) -> None:
    _, out = rendered_report
    page = out.read_text(encoding="utf-8")
    summary = sentences(page)
    state = summary[summary.index("Full-state polling (every"):]
    assert "7.1 KiB on the wire per request; 53 polls missed their tick" in state
    assert "missed their tick" not in summary[summary.index("Delta polling"):summary.index("SSE:")]
    text = section_text(page, "findings")
    assert "state: warning: load generator lagging at 1 step (timer lag p99 up to 250 ms, limit 100 ms)" in text
    assert "ws: warning: 1 step left out of the memory fit" in text


def test_bands_reach_the_page(rendered_report: tuple[Path, Path]) -> None:
    _, out = rendered_report
    page = out.read_text(encoding="utf-8")
    # Four per-connection figures, each with the lagging step's band label in its JSON.
    # The run's own limit (meta.json slo) words the label.
    assert page.count('"text":"invalid: load generator lagging (timer lag p99 above 100 ms)"') == 4
    assert "Grey bands and crossed markers are invalid steps" in page


def test_old_run_still_renders(old_run_dir: Path, tmp_path: Path) -> None:
    out = render_report([old_run_dir], tmp_path / "old.html")
    page = out.read_text(encoding="utf-8")
    assert page.count('class="plotly-graph-div"') == 6
    text = section_text(page, "wire")
    assert "Delta polling – 250 ms – 96.7 KiB – 330 B 6 of 6" in text
    assert "Overhead unavailable for Delta polling, SSE, WebSocket" in text
    summary = sentences(page)
    assert "Delta polling (every 3 s): 3,200 connections" in summary and "tick" not in summary


def test_sentence_missed_ticks_only_for_polling() -> None:
    s = {"max_connections": 10, "mem_per_conn_bytes": None, "delivery_ms": {"p99": None},
         "capacity_at_slo": None, "capacity_at_slo_users": None, "missed_ticks": 1}
    slo = {"delivery_p99_ms": 250, "error_rate": 0.005}
    assert transport_sentence("poll", s, slo).endswith(
        "not fitted; 1 poll missed its tick (the viewer was still waiting on a slow answer).")
    assert "missed" not in transport_sentence("sse", s, slo)
    assert "missed" not in transport_sentence("state", {**s, "missed_ticks": 0}, slo)
