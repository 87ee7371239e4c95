"""The report's planner in headless Chromium: it computes on load and on every input, offline, and
gives `rtcap plan`'s numbers for the same inputs.

Chromium is driven over the DevTools protocol (tests/reports/browser.py), so the test types into the
real form and reads the result cells the script wrote. Skipped only when no Chromium is installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rtcap.reports.plan_cli import main as plan_main
from rtcap.reports.plan_cli import model_line
from tests.reports.browser import Browser, needs_browser

pytestmark = [needs_browser, pytest.mark.solo]  # Chromium: alone (tests/solo.py)

FIELDS = ("work_per_s", "instances", "instances_by.memory", "instances_by.cpu",
          "instances_by.connections", "instances_within_measured", "memory_bytes", "cpu_cores", "bandwidth_bytes_per_s")
# Read the computed plan back from the DOM: one dict per result row.
READ_ROWS = """JSON.stringify({state: document.getElementById("plan-body").getAttribute("data-state"),
  rows: Array.from(document.querySelectorAll("#plan-body tr")).map(function (tr) {
    var r = {transport: tr.dataset.transport, available: tr.dataset.available === "true",
             lower: tr.dataset.lowerBound === "true", text: tr.textContent, per: {}};
    tr.querySelectorAll("td[data-field]").forEach(function (td) {
      r[td.dataset.field] = JSON.parse(td.dataset.values); });
    ["memory", "cpu", "connections"].forEach(function (k) {
      var v = tr.getAttribute("data-per-" + k); if (v) r.per[k] = JSON.parse(v); });
    return r; })})"""


class Planner:
    """The report's planner form, as a user drives it in the browser."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser

    def open(self, url: str) -> None:
        """Load the report and wait until the planner has computed."""
        self.browser.open(url, 'document.querySelector("#plan-body[data-state]")', "the planner")

    def eval(self, expression: str) -> Any:
        """Evaluate JavaScript in the page."""
        return self.browser.eval(expression)

    def rows(self) -> dict[str, Any]:
        """The planner's current result, read from the DOM."""
        return json.loads(self.browser.eval(READ_ROWS))

    def type(self, name: str, value: str) -> None:
        """Set one form input as a user would and fire its input event."""
        self.browser.eval(f"""(function () {{ var el = document.querySelector('#plan-form [name="{name}"]');
            el.value = {json.dumps(value)}; el.dispatchEvent(new Event("input", {{bubbles: true}})); }})()""")


@pytest.fixture
def planner(browser: Browser) -> Planner:
    """The shared Chromium, seen through the planner form."""
    return Planner(browser)


def cli_plan(run: Path, inputs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`rtcap plan RUN ... --format json` for the same input strings the form got."""
    capsys.readouterr()
    args = [str(run), "--format", "json"] + [x for k, v in inputs.items() for x in (f"--{k.replace('_', '-')}", v)]
    assert plan_main(args) == 0
    return json.loads(capsys.readouterr().out)


def assert_same(page: dict[str, Any], cli: dict[str, Any]) -> None:
    """The page's rows carry exactly the CLI's plan numbers."""
    assert page["state"] == "ok"
    assert [r["transport"] for r in page["rows"]] == [p["transport"] for p in cli["plans"]]
    for row, p in zip(page["rows"], cli["plans"]):
        assert row["available"] == p["available"] and row["work_per_s"] == pytest.approx(p["work_per_s"], rel=1e-12)
        if not p["available"]:
            assert row["text"].endswith("unavailable: " + p["why"])
            continue
        assert row["lower"] == p["connections_lower_bound"]
        assert row["per"] == p["per_instance"] and row["binding"] == p["binding"]
        for field in FIELDS:
            want = p[field] if "." not in field else p[field.split(".")[0]][field.split(".")[1]]
            assert row[field] == pytest.approx(want, rel=1e-12), (p["transport"], field)


DEFAULTS = {"viewers": "100000", "update_rate": "1/s", "freshness": "1s", "instance_memory": "4GiB",
            "instance_cores": "1", "headroom": "20%"}


def test_planner_equals_rtcap_plan_and_follows_inputs(
        planner: Planner, rendered_report: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run, page = rendered_report
    planner.open(page.as_uri())
    first = planner.rows()
    assert_same(first, cli_plan(run, DEFAULTS, capsys))
    sse = {r["transport"]: r for r in first["rows"]}["sse"]
    assert sse["binding"] == ["connections"] and sse["instances"] == [63, 63, 63]  # 1,600 held at p99 <= 1 s

    # Each change below is typed into the form; the result must move and stay equal to the CLI's.
    steps = [("freshness", "100ms", "connections"),  # sse: only steps with p99 <= 100 ms: 800 held
             ("update_rate", "10/min", "connections"),
             ("instance_memory", "64MiB", "memory"),  # 51.2 MiB usable - 50 MiB baseline: memory binds
             ("instance_memory", "4GiB", "connections"),
             ("update_rate", "50/s", "cpu"),  # 0.75 core / (1e-4 core-s x 50/s): 150 viewers per instance
             ("instance_cores", "2", "cpu"), ("headroom", "0.1", "cpu"),
             ("viewers", "1.5M", None),
             ("instance_memory", "32MiB", None),  # below every idle baseline: nothing fits
             ("instance_memory", "4GiB", None), ("freshness", "5ms", None)]  # push: no step that fresh
    inputs, before, unavailable = dict(DEFAULTS), first, set()
    for name, value, binds in steps:
        planner.type(name, value)
        inputs[name] = value
        now = planner.rows()
        assert now["rows"] != before["rows"], f"the result did not change when {name} became {value}"
        assert_same(now, cli_plan(run, inputs, capsys))
        if binds:
            assert {r["transport"]: r for r in now["rows"]}["sse"]["binding"] == [binds], (name, value)
        unavailable |= {(name, value, r["transport"]) for r in now["rows"] if not r["available"]}
        before = now
    assert {t for n, v, t in unavailable if v == "32MiB"} == {"poll", "sse", "ws", "state"}
    assert {t for n, v, t in unavailable if v == "5ms"} == {"sse", "ws"}


def test_planner_reads_the_url_hash_and_flags_bad_input(
        planner: Planner, rendered_report: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run, page = rendered_report
    inputs = {**DEFAULTS, "viewers": "250k", "freshness": "500ms", "instance_memory": "1G"}
    planner.open(page.as_uri() + "#viewers=250k&freshness=500ms&instance_memory=1G")
    assert_same(planner.rows(), cli_plan(run, inputs, capsys))
    lines = planner.eval('Array.from(document.querySelectorAll("#plan-notes li li")).map(function (li) '
                         '{ return li.textContent; }).filter(function (t) { return t.startsWith("model: "); })')
    assert lines == [model_line(m) for m in cli_plan(run, inputs, capsys)["models"]]
    # Offline: the page fetched nothing (no script, style, font or data from anywhere).
    assert planner.eval('performance.getEntriesByType("resource").length') == 0
    planner.type("instance_memory", "4 gigs")
    assert planner.rows() == {"state": "error", "rows": []}
    message = planner.eval('document.getElementById("plan-err-instance_memory").textContent')
    from rtcap.reports.plan import PlanInputError, parse_size

    with pytest.raises(PlanInputError) as exc:
        parse_size("4 gigs")
    assert message == str(exc.value)  # the page and the CLI reject it alike
