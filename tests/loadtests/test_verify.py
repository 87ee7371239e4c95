"""The pre-load check against the real reference target, and against servers that break the contract."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from loadtests.verify import VerifyError, verify_target


@pytest.mark.parametrize("transport", ["poll", "sse", "ws", "chat"])
def test_reference_target_passes_for_every_transport(reference_url: str, transport: str) -> None:
    verify_target(reference_url, transport, channel=f"verify-{transport}")


class _Handler(http.server.BaseHTTPRequestHandler):
    """Healthy, but /publish gives no seq and /poll never shows the event."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = {"status": "ok"} if self.path == "/healthz" else {"events": []}
        self._send(200, body)

    def do_POST(self) -> None:  # noqa: N802
        self._send(200, {"accepted": True})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_server_that_does_not_publish_is_refused(impostor: str) -> None:
    with pytest.raises(VerifyError, match="/publish"):
        verify_target(impostor, "poll")


def test_sse_on_a_plain_json_server_is_refused(impostor: str) -> None:
    with pytest.raises(VerifyError, match="/sse"):
        verify_target(impostor, "sse")


def test_unknown_transport_is_refused(reference_url: str) -> None:
    with pytest.raises(VerifyError, match="unknown transport"):
        verify_target(reference_url, "pigeon")
