"""Drive one headless Chromium over the DevTools protocol (websocket-client), for the browser tests.

Tests using it mark themselves with `needs_browser` and take the `browser` fixture (conftest.py): one
Chromium per module. A machine without Chromium gets Debian's package installed on first import (as CI
does for the example servers); they are skipped only where that cannot be done (no apt-get, not root).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

try:
    import websocket
except ImportError:  # the tests skip themselves (needs_browser)
    websocket = None



def find_chromium() -> str | None:
    """Chromium's path; where it is missing, Debian's package is installed first when apt-get can run."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or shutil.which("apt-get") is None or os.geteuid() != 0:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]):
        if subprocess.run(command, env=env, capture_output=True, timeout=600, check=False).returncode != 0:
            return None
    return shutil.which("chromium")


CHROMIUM = find_chromium()
needs_browser = pytest.mark.skipif(CHROMIUM is None or websocket is None,
                                   reason="needs chromium on PATH (Debian: apt-get install chromium) and "
                                          "websocket-client")
TIMEOUT_S = 15.0


class Browser:
    """One headless Chromium we start and stop ourselves, spoken to over the DevTools protocol."""

    def __init__(self, profile: Path) -> None:
        self.ws: Any = None
        self.next_id = 0
        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-quic", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--remote-debugging-port=0", "--remote-allow-origins=*",
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

    def open(self, url: str, ready: str = "true", what: str = "the page") -> None:
        """Load `url` afresh (not a same-document hash change) and wait until the JavaScript `ready` holds."""
        self.call("Page.navigate", url="about:blank")
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + TIMEOUT_S
        while not self.eval('document.readyState === "complete" && location.href.startsWith("file:") && '
                            f"!!({ready})"):
            assert time.monotonic() < deadline, f"{what} did not render"
            time.sleep(0.05)

    def screenshot(self, path: Path) -> bytes:
        """Save a PNG of the whole page (beyond the viewport) to `path` and return its bytes."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        data = base64.b64decode(shot["data"])
        path.write_bytes(data)
        return data

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

