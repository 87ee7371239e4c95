"""Plain Locust on locustfile.py: every transport headless, and rtcap's options in the web UI's start form."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rtcap.targets.transports import NAMES, where
from tests.loadtests.locust_run import finish, locust_stats, start_locust

ROOT = Path(__file__).resolve().parents[1]


def test_headless_locust_runs_every_user_class_without_failures(reference_url: str, tmp_path: Path) -> None:
    # No class named: Locust spreads the users over every class, as `locust -f locustfile.py -u 60` does.
    run = start_locust(reference_url, "", 20, 6, tmp_path)
    totals = finish(run, tmp_path)
    transports = set(NAMES)
    assert set(totals) == transports | {"generator"}  # generator: its own timer lag
    stats = locust_stats(tmp_path)
    answered = set(where(lambda t: t.request_response))
    for transport in transports - answered:  # request/response: answers, not deliveries
        row = stats[(transport, "delivery")]
        assert int(row["Request Count"]) > 0, transport
    for transport in answered:
        assert sum(int(r["Request Count"]) for (kind, _), r in stats.items() if kind == transport) > 0, transport
    assert int(stats[("", "Aggregated")]["Failure Count"]) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_options_appear_in_the_web_ui_start_form() -> None:
    port = _free_port()
    command = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfile.py"), "--web-host", "127.0.0.1",
               "--web-port", str(port), "--host", "http://127.0.0.1:9"]
    locust = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        page = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait for the web UI to accept connections (bounded)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    page = response.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert page, "the web UI did not answer"
        for option in ("poll_interval", "chat_rate", "channel", "steps"):
            assert f'"{option}"' in page, option
        assert "rtcap_record" not in page  # an internal option stays out of the form
        for user in ("PollUser", "LongPollUser", "StateUser", "SSEUser", "WebSocketUser", "ChatUser", "SignalUser",
                     "RpcUser", "RestUser", "PresenceUser"):
            assert user in page
    finally:
        locust.terminate()
        locust.wait(10)


def test_rtcap_target_serve_is_the_reference_server_command() -> None:
    done = subprocess.run([sys.executable, "-m", "rtcap.loadtests.cli", "target", "serve", "--port", "99999"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "port" in done.stderr
    helped = subprocess.run([sys.executable, "-m", "rtcap.loadtests.cli", "target", "serve", "--help"],
                            capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0 and "--payload" in helped.stdout and "--rate" in helped.stdout
