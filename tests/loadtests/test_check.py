"""`rtcap check-target` and the check behind `rtcap run`, against real servers on loopback."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from rtcap.loadtests.run.check import check_process, check_transport, format_table
from rtcap.loadtests.cli import main
from rtcap.targets.adapter import adapter_from_dict, load_adapter, reference_adapter_path


@pytest.fixture
def reference(reference_url: str):
    return load_adapter(reference_adapter_path()).with_base_url(reference_url)


@pytest.mark.parametrize("transport", ["poll", "longpoll", "state", "sse", "ws", "chat"])
def test_every_transport_of_the_reference_target_passes(reference, transport: str) -> None:
    result = check_transport(reference, transport)
    assert result.ok, result.why
    assert result.events == 3
    assert result.connect_ms is not None and result.connect_ms > 0
    # Same machine, same clock: receive - ts is the delivery latency, well under a second.
    assert result.offset_ms is not None and -5 < result.offset_ms < 1000
    assert "delivery latency" in result.figures


def test_process_found_by_port(reference, reference_url: str) -> None:
    port = urlsplit(reference_url).port
    adapter = adapter_from_dict({"name": "by-port", "base_url": reference_url,
                                 "transports": {"sse": {"url": "/sse"}}, "process": {"port": port}})
    found = check_process(adapter)
    assert found.ok and found.rss_bytes and found.rss_bytes > 10 * 2**20
    missing = adapter_from_dict({"name": "gone", "base_url": reference_url,
                                 "transports": {"sse": {"url": "/sse"}}, "process": {"pid": 2**22 + 7}})
    assert not check_process(missing).ok


class _Impostor(http.server.BaseHTTPRequestHandler):
    """Accepts publishes but never shows an event; its SSE endpoint is plain JSON."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._send({"events": []})

    def do_POST(self) -> None:  # noqa: N802
        self._send({"accepted": True})

    def _send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor_adapter(tmp_path: Path) -> Iterator[Path]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path / "impostor.toml"
    path.write_text(f"""
name = "impostor"
base_url = "http://127.0.0.1:{server.server_address[1]}"
[publish]
mode = "http"
url = "/publish?channel={{channel}}"
body = '{{{{"seq": {{seq}}, "ts": {{ts}}}}}}'
[transports.poll]
url = "/poll?since={{cursor}}"
events = "events"
[transports.sse]
url = "/sse"
""")
    yield path
    server.shutdown()


def test_a_server_that_never_delivers_fails_each_transport_with_a_reason(impostor_adapter: Path) -> None:
    adapter = load_adapter(impostor_adapter)
    poll = check_transport(adapter, "poll", timeout=1.5)
    sse = check_transport(adapter, "sse", timeout=1.5)
    assert not poll.ok and "0 of 3 events published arrived" in poll.why
    assert not sse.ok and "text/event-stream" in sse.why
    table = format_table([poll, sse], check_process(adapter))
    assert "FAILED" in table and "memory per connection and target CPU will be unavailable" in table


def test_check_target_command_starts_the_reference_server_and_passes(capsys: pytest.CaptureFixture) -> None:
    assert main(["check-target", str(reference_adapter_path()), "--transports", "poll,sse,ws"]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok ") >= 4  # three transports and the process
    assert "the process rtcap starts" in out


def test_check_target_command_exit_codes(impostor_adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check-target", str(impostor_adapter), "--timeout", "1"]) == 1
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\nbase_url = "http://127.0.0.1:1"\n[transports.sse]\nurl = "/sse"\nbogus = 1\n')
    assert main(["check-target", str(broken)]) == 2
    assert "transports.sse.bogus" in capsys.readouterr().err
    assert main(["check-target", str(impostor_adapter), "--transports", "ws"]) == 2


@pytest.mark.parametrize("transport", ["signal", "presence"])
def test_signalling_and_presence_deliver_ordered_events_with_their_publish_time(reference, transport: str) -> None:
    result = check_transport(reference, transport)
    assert result.ok, result.why
    assert result.events == 3 and result.offset_ms is not None and -5 < result.offset_ms < 1000


@pytest.mark.parametrize("transport", ["rpc", "rest"])
def test_request_transports_are_checked_by_their_answers(reference, transport: str) -> None:
    result = check_transport(reference, transport)
    assert result.ok, result.why
    assert "response time" in result.figures and result.offset_ms is None
    if transport == "rest":
        assert "304 Not Modified" in result.figures  # the reference's /latest honours If-None-Match


def test_an_rpc_endpoint_that_answers_without_ids_fails_the_check(reference) -> None:
    # The feed socket answers requests with error frames that carry no id: every request stays unanswered.
    spec = {"url": "/ws?channel=live", "request": '{{"type":"request","id":{id},"op":"get"}}'}
    adapter = adapter_from_dict({"name": "x", "base_url": reference.base_url, "transports": {"rpc": spec}})
    result = check_transport(adapter, "rpc", timeout=1.0)
    assert not result.ok and "unanswered" in result.why
