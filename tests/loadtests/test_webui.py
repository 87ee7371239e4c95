"""The web UI's Capacity tab: live rows over Locust's own stats endpoint, loopback by default, and in a
real browser: start a test from the form, watch the tab update, stop it."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rtcap.targets.launch import LaunchedTarget, free_port
from tests.conftest import launch_reference

pytestmark = pytest.mark.solo  # Chromium and a live Locust: alone (tests/solo.py)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def target() -> Iterator[LaunchedTarget]:
    launched = launch_reference(rate=10, payload=64)
    yield launched
    launched.stop()


@contextlib.contextmanager
def locust_web_ui(log: Path, *args: str, locustfile: str = "locustfile.py") -> Iterator[str]:
    """Run `locust -f LOCUSTFILE --web-port P ARGS` (headful, loopback) until the block ends; yields its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "locust", "-f", locustfile, "--web-port", str(port), *args],
                               stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded wait for the UI to accept connections
            try:
                urllib.request.urlopen(base + "/login", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, log.read_text()
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture
def web_ui(target: LaunchedTarget, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "locust.log"
    with locust_web_ui(log, "--host", target.adapter.base_url, "--target-pid", str(target.pid),
                       "--threshold", "sse.delivery.p99<5s", "SSEUser") as base:
        yield base, log


def fetch(url: str, opener: urllib.request.OpenerDirector | None = None) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of a GET, error statuses included."""
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Leave redirects to the caller: a redirect to the login page is the answer under test."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def capacity(base: str) -> list[dict[str, Any]]:
    stats = get_json(base + "/stats/requests")
    return next(e["data"] for e in stats["extended_stats"] if e["key"] == "rtcap-capacity")


def wait_for(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_the_capacity_tab_rows_follow_the_test_over_http(web_ui: tuple[str, Path], target: LaunchedTarget) -> None:
    base, log = web_ui
    page = urllib.request.urlopen(base + "/", timeout=5).read().decode()
    assert '"rtcap-capacity"' in page and '"Capacity"' in page and "Memory per connection" in page
    assert re.search(r"Starting web interface at http://127\.0\.0\.1:", log.read_text())  # loopback by default
    assert capacity(base) == []  # nothing measured before the test starts
    assert '"extended_csv_files"' in page and "/rtcap/report" in page  # the Download Data tab links the report
    with pytest.raises(urllib.error.HTTPError) as no_report:
        urllib.request.urlopen(base + "/rtcap/report", timeout=5)
    assert no_report.value.code == 404  # no test has stopped yet
    body = urllib.parse.urlencode({"user_count": 12, "spawn_rate": 3, "host": target.adapter.base_url}).encode()
    urllib.request.urlopen(urllib.request.Request(base + "/swarm", data=body), timeout=5).read()  # slow ramp: several connection counts for the slope
    row = wait_for(lambda: next((r for r in capacity(base) if r["transport"] == "sse" and r["connections"] == 12
                                 and r["p50"] is not None and r["slope"] is not None), None), "a full sse row")
    assert row["msgs_per_s"] > 50 and row["target_rss"] > 10 and row["thresholds"] == "1 of 1 met"
    assert 0 < row["slope"] < 1024  # KiB per connection, from the sampled target process
    urllib.request.urlopen(urllib.request.Request(base + "/stop", data=b""), timeout=5).read()
    wait_for(lambda: get_json(base + "/stats/requests")["state"] == "stopped", "the test to stop")
    report = wait_for(lambda: report_html(base), "the HTML report of the stopped test")
    assert "<title>rtcap capacity report: webui-" in report and "SSE" in report and "plotly" in report
    # The report's run directory is a real one: rtcap report reads it again.
    path = re.search(r"HTML report of this test: (\S+)", wait_for(lambda: "HTML report" in log.read_text() and
                                                                   log.read_text(), "the report's path in the log"))
    assert path is not None
    run_dir = Path(path[1]).parent
    steps = (run_dir / "steps.csv").read_text().splitlines()
    assert len(steps) == 2 and steps[1].startswith("sse,0,12,12")  # one row: 12 users, 12 connections
    again = subprocess.run([sys.executable, "-m", "rtcap.loadtests.cli", "report", str(run_dir), "--format", "md"],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert again.returncode == 0 and "SSE" in again.stdout, again.stderr


def report_html(base: str) -> str | None:
    """The web UI's HTML report, or None while it is not written yet."""
    try:
        with urllib.request.urlopen(base + "/rtcap/report", timeout=5) as response:
            return response.read().decode()
    except urllib.error.HTTPError:
        return None


def test_start_watch_the_capacity_tab_and_stop_in_a_real_browser(web_ui: tuple[str, Path], target: LaunchedTarget,
                                                                 tmp_path: Path) -> None:
    from tests.reports.browser import CHROMIUM, Browser

    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    base, _ = web_ui
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=base + "/")

        def js(expression: str) -> Any:
            return browser.eval(expression)

        wait_for(lambda: js('!!document.querySelector("form input[name=userCount]")'), "the start form")
        js(f"""(function () {{
            var set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
            for (const [name, value] of [["userCount", "12"], ["spawnRate", "4"], ["host", {json.dumps(target.adapter.base_url)}]]) {{
                var el = document.querySelector("form input[name=" + name + "]");
                if (!el) continue;
                set.call(el, value); el.dispatchEvent(new Event("input", {{bubbles: true}}));
            }}
            document.querySelector("form button[type=submit]").click();
        }})()""")
        wait_for(lambda: get_json(base + "/stats/requests")["state"] in ("spawning", "running"), "the test to start")
        click_tab = """(function () { var t = [...document.querySelectorAll('[role=tab]')]
            .find(e => e.textContent.trim() === 'Capacity'); if (t) t.click(); return !!t; })()"""
        assert wait_for(lambda: js(click_tab), "the Capacity tab")
        read_cells = """JSON.stringify([...document.querySelectorAll('table tbody tr')]
            .map(r => [...r.querySelectorAll('td')].map(c => c.textContent.trim())))"""
        headers = js("[...document.querySelectorAll('table thead th')].map(h => h.textContent.trim())")
        assert "Delivery p99 (ms)" in headers and "Memory per connection (KiB, running)" in headers
        first = wait_for(lambda: [r for r in json.loads(js(read_cells)) if r and r[0] == "sse"], "an sse row")
        updated = wait_for(lambda: [r for r in json.loads(js(read_cells)) if r and r[0] == "sse" and r != first[0]
                                    and r[1] == "12"], "the sse row to update to 12 connections")
        assert updated[0][headers.index("Thresholds")] == "1 of 1 met"
        stop = """(function () { var b = [...document.querySelectorAll('button')]
            .find(e => e.textContent.trim().toUpperCase() === 'STOP'); if (b) b.click(); return !!b; })()"""
        assert js(stop)
        wait_for(lambda: get_json(base + "/stats/requests")["state"] == "stopped", "the test to stop")
        data_tab = """(function () { var t = [...document.querySelectorAll('[role=tab]')]
            .find(e => e.textContent.trim() === 'Download Data'); if (t) t.click(); return !!t; })()"""
        assert wait_for(lambda: js(data_tab), "the Download Data tab")
        link = wait_for(lambda: js("""(function () { var a = [...document.querySelectorAll('a')]
            .find(e => e.textContent.includes('rtcap capacity report')); return a ? a.href : ''; })()"""),
                        "the report link")
        assert link == base + "/rtcap/report"
        wait_for(lambda: report_html(base), "the report to be written")
        browser.call("Page.navigate", url=link)
        title = wait_for(lambda: js("document.readyState === 'complete' && document.title"), "the report page")
        assert title.startswith("rtcap capacity report: webui-")
    finally:
        browser.close()


def test_web_login_without_an_auth_setup_serves_locusts_message_not_a_500(tmp_path: Path) -> None:
    log = tmp_path / "locust.log"
    with locust_web_ui(log, "--web-login", "--host", "http://127.0.0.1:9", "SSEUser") as base:
        status, _, body = fetch(base + "/stats/requests")  # rtcap extends this endpoint's answer
        assert status == 200 and body.startswith("Locust auth exception")
        status, _, body = fetch(base + "/rtcap/report")  # rtcap's own route sits behind the same login
        assert status == 200 and body.startswith("Locust auth exception")
    assert "TypeError" not in log.read_text()


def test_web_login_guards_rtcap_routes_and_the_capacity_tab_works_once_logged_in(tmp_path: Path) -> None:
    log = tmp_path / "locust.log"
    with locust_web_ui(log, "--web-login", "--host", "http://127.0.0.1:9", "SSEUser",
                       locustfile="locustfile.py,tests/loadtests/webui_login.py") as base:
        stranger = urllib.request.build_opener(NoRedirect)
        for path in ("/rtcap/report", "/stats/requests"):
            status, headers, _ = fetch(base + path, stranger)
            assert status == 302 and "/login" in headers["Location"], path
        member = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        assert fetch(base + "/test-login", member)[0] == 200  # webui_login.LOGIN_PATH (importing it imports locust)
        status, _, body = fetch(base + "/stats/requests", member)
        assert status == 200 and {"key": "rtcap-capacity", "data": []} in json.loads(body)["extended_stats"]
        status, _, body = fetch(base + "/rtcap/report", member)
        assert status == 404 and body.startswith("No rtcap report yet")
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize(("bind", "warns"), [("0.0.0.0", True), (None, False)])
def test_a_master_bound_beyond_loopback_is_warned_about(tmp_path: Path, bind: str | None, warns: bool) -> None:
    log = tmp_path / "locust.log"
    port = free_port()
    bound = ["--master-bind-host", bind] if bind else []
    with locust_web_ui(log, "--master", *bound, "--master-bind-port", str(port), "--host", "http://127.0.0.1:9",
                       "SSEUser"):
        text = log.read_text()  # init, where the warning is logged, runs before the web UI answers
    warning = f"the master listens for workers on all interfaces port {port} (--master-bind-host)"
    assert (warning in text) is warns, text
    assert "the web UI listens" not in text  # the web UI itself stayed on loopback
