"""The report's planner in headless Chromium: it computes on load and on every input, offline, and
gives `rtcap plan`'s numbers for the same inputs.

Chromium is driven over the DevTools protocol (websocket-client), so the test types into the real
form and reads the result cells the script wrote. Skipped only when no Chromium is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reports.plan_cli import main as plan_main
from reports.plan_cli import model_line

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")
websocket = pytest.importorskip("websocket", reason="websocket-client is needed to drive Chromium")

TIMEOUT_S = 15.0
FIELDS = ("work_per_s", "instances", "instances_by.memory", "instances_by.cpu",
          "instances_by.connections", "memory_bytes", "cpu_cores", "bandwidth_bytes_per_s")
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


class Browser:
    """One headless Chromium we start and stop ourselves, spoken to over the DevTools protocol."""

    def __init__(self, profile: Path) -> None:
        self.ws: Any = None
        self.next_id = 0
        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            self.ws = websocket.create_connection(self._page_url(profile), timeout=TIMEOUT_S,
                                                  suppress_origin=True)
        except BaseException:
            self.close()
            raise

    def _page_url(self, profile: Path) -> str:
        """The DevTools WebSocket URL of the browser's page, once Chromium has opened its port."""
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"Chromium exited with status {self.proc.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                port = port_file.read_text().split()[0]
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=TIMEOUT_S) as resp:
                    pages = [t for t in json.load(resp) if t["type"] == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            if time.monotonic() > deadline:
                pytest.fail("Chromium did not open its DevTools port in time")
            time.sleep(0.05)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and wait for its answer (events in between are skipped)."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg["result"]

    def eval(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its (JSON-able) value."""
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in res, res["exceptionDetails"]
        return res["result"].get("value")

    def open(self, url: str) -> None:
        """Load `url` afresh (not a same-document hash change) and wait until the planner has rendered."""
        self.call("Page.navigate", url="about:blank")
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + TIMEOUT_S
        while not self.eval('document.readyState === "complete" && location.href.startsWith("file:") && '
                            '!!document.querySelector("#plan-body[data-state]")'):
            assert time.monotonic() < deadline, "the planner did not render"
            time.sleep(0.05)

    def rows(self) -> dict[str, Any]:
        """The planner's current result, read from the DOM."""
        return json.loads(self.eval(READ_ROWS))

    def type(self, name: str, value: str) -> None:
        """Set one form input as a user would and fire its input event."""
        self.eval(f"""(function () {{ var el = document.querySelector('#plan-form [name="{name}"]');
            el.value = {json.dumps(value)}; el.dispatchEvent(new Event("input", {{bubbles: true}})); }})()""")

    def close(self) -> None:
        """Stop the browser (its own process group, which only it is in)."""
        if self.ws is not None:
            self.ws.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # Renderer and GPU helpers share the group and may outlive the main process for a moment.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One Chromium for the module's tests."""
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


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
        browser: Browser, rendered_report: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run, page = rendered_report
    browser.open(page.as_uri())
    first = browser.rows()
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
        browser.type(name, value)
        inputs[name] = value
        now = browser.rows()
        assert now["rows"] != before["rows"], f"the result did not change when {name} became {value}"
        assert_same(now, cli_plan(run, inputs, capsys))
        if binds:
            assert {r["transport"]: r for r in now["rows"]}["sse"]["binding"] == [binds], (name, value)
        unavailable |= {(name, value, r["transport"]) for r in now["rows"] if not r["available"]}
        before = now
    assert {t for n, v, t in unavailable if v == "32MiB"} == {"poll", "sse", "ws", "state"}
    assert {t for n, v, t in unavailable if v == "5ms"} == {"sse", "ws"}


def test_planner_reads_the_url_hash_and_flags_bad_input(
        browser: Browser, rendered_report: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run, page = rendered_report
    inputs = {**DEFAULTS, "viewers": "250k", "freshness": "500ms", "instance_memory": "1G"}
    browser.open(page.as_uri() + "#viewers=250k&freshness=500ms&instance_memory=1G")
    assert_same(browser.rows(), cli_plan(run, inputs, capsys))
    lines = browser.eval('Array.from(document.querySelectorAll("#plan-notes li li")).map(function (li) '
                         '{ return li.textContent; }).filter(function (t) { return t.startsWith("model: "); })')
    assert lines == [model_line(m) for m in cli_plan(run, inputs, capsys)["models"]]
    # Offline: the page fetched nothing (no script, style, font or data from anywhere).
    assert browser.eval('performance.getEntriesByType("resource").length') == 0
    browser.type("instance_memory", "4 gigs")
    assert browser.rows() == {"state": "error", "rows": []}
    message = browser.eval('document.getElementById("plan-err-instance_memory").textContent')
    from reports.plan import PlanInputError, parse_size

    with pytest.raises(PlanInputError) as exc:
        parse_size("4 gigs")
    assert message == str(exc.value)  # the page and the CLI reject it alike
