"""Check a target before any load: it answers /healthz and one published event arrives end to end.

Blocking clients on purpose (urllib and the Locust-free SSE and WebSocket clients): this runs in the orchestrating
process, which must not import Locust (importing Locust patches the whole process for gevent).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import websocket

from loadtests.netio import websocket_url
from loadtests.sse_client import SSEClient, SSEConnectError, StreamClosed
from loadtests.sse_parser import SSEEvent
from loadtests.ws_client import WebSocketClient, WebSocketClosed


class VerifyError(RuntimeError):
    """The target does not behave as the wire contract says."""


def _http(method: str, url: str, body: dict | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None
    except (urllib.error.URLError, OSError) as error:
        raise VerifyError(f"{method} {url} failed: {error}") from error


def check_health(base_url: str) -> dict:
    """GET /healthz must answer 200 with status ok."""
    status, body = _http("GET", f"{base_url}/healthz")
    if status != 200 or not isinstance(body, dict) or body.get("status") != "ok":
        raise VerifyError(f"GET {base_url}/healthz answered {status} {body!r}, expected 200 {{'status': 'ok'}}")
    return body


def publish(base_url: str, channel: str) -> int:
    """POST one event and return its seq."""
    status, body = _http("POST", f"{base_url}/publish?{urlencode({'channel': channel})}", {"probe": "rtcap-verify"})
    if status != 200 or not isinstance(body, dict) or "seq" not in body:
        raise VerifyError(f"POST /publish answered {status} {body!r}, expected 200 with a seq")
    return int(body["seq"])


def _check_event(event: Any, where: str) -> None:
    if not isinstance(event, dict) or not isinstance(event.get("seq"), int) or not isinstance(event.get("ts"), (int, float)):
        raise VerifyError(f"{where}: event {event!r} lacks an integer seq and a numeric ts")


def verify_poll(base_url: str, channel: str, timeout: float) -> None:
    """A published event shows up in /poll after the cursor."""
    status, body = _http("GET", f"{base_url}/poll?{urlencode({'channel': channel})}")
    if status != 200:
        raise VerifyError(f"GET /poll answered {status}")
    seq = publish(base_url, channel)
    status, body = _http("GET", f"{base_url}/poll?{urlencode({'channel': channel, 'since': seq - 1})}")
    events = (body or {}).get("events", []) if status == 200 else []
    for event in events:
        _check_event(event, "/poll")
    if not any(event["seq"] == seq for event in events):
        raise VerifyError(f"published seq {seq} did not appear in /poll?since={seq - 1} (got {status})")


def verify_sse(base_url: str, channel: str, timeout: float) -> None:
    """A published event arrives on an open /sse stream."""
    client = SSEClient(f"{base_url}/sse?{urlencode({'channel': channel})}", timeout=timeout)
    try:
        client.connect()
        seq = publish(base_url, channel)
        deadline = time.monotonic() + timeout
        for item, _received_at in client.items():
            if isinstance(item, SSEEvent):
                event = json.loads(item.data)
                _check_event(event, "/sse")
                if event["seq"] >= seq:
                    return
            if time.monotonic() > deadline:
                break
        raise VerifyError(f"published seq {seq} did not arrive on /sse within {timeout} s")
    except (OSError, SSEConnectError, StreamClosed, ValueError) as error:
        raise VerifyError(f"/sse: {error}") from error
    finally:
        client.close()


def _first_matching(client: WebSocketClient, wanted: Callable[[dict], bool], timeout: float, where: str) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text, _received_at = client.receive()
        message = json.loads(text)
        if wanted(message):
            _check_event(message, where)
            return message
    raise VerifyError(f"{where}: the expected message did not arrive within {timeout} s")


def verify_ws(base_url: str, channel: str, timeout: float) -> None:
    """A published event arrives on an open /ws feed."""
    client = WebSocketClient(websocket_url(base_url, f"/ws?{urlencode({'channel': channel})}"), timeout=timeout)
    try:
        client.connect()
        seq = publish(base_url, channel)
        _first_matching(client, lambda m: isinstance(m.get("seq"), int) and m["seq"] >= seq, timeout, "/ws")
    except (OSError, websocket.WebSocketException, WebSocketClosed, ValueError) as error:
        raise VerifyError(f"/ws: {error}") from error
    finally:
        client.close()


def verify_chat(base_url: str, channel: str, timeout: float) -> None:
    """A chat message sent to a room comes back as a broadcast with seq and ts."""
    client = WebSocketClient(websocket_url(base_url, "/ws/chat?room=rtcap-verify"), timeout=timeout)
    try:
        client.connect()
        client.send_json({"type": "chat", "text": "verify"})
        _first_matching(client, lambda m: m.get("type") == "chat", timeout, "/ws/chat")
    except (OSError, websocket.WebSocketException, WebSocketClosed, ValueError) as error:
        raise VerifyError(f"/ws/chat: {error}") from error
    finally:
        client.close()


VERIFIERS = {"poll": verify_poll, "sse": verify_sse, "ws": verify_ws, "chat": verify_chat}


def verify_target(base_url: str, transport: str, channel: str = "live", timeout: float = 5.0) -> None:
    """Health check plus one event end to end over `transport`; raises VerifyError on any mismatch."""
    check_health(base_url)
    if transport not in VERIFIERS:
        raise VerifyError(f"unknown transport {transport!r}; known: {', '.join(VERIFIERS)}")
    VERIFIERS[transport](base_url, channel, timeout)
