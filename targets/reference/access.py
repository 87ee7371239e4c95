"""Who may change the reference target's state: the publish token and the browser Origin check.

Reading stays open to anyone who can reach the port (a live feed is public by design). What a stranger
must not do is publish (the token, required once the server listens beyond loopback), or make a visitor's
browser do it for them: any web page can send a cross-origin `text/plain` POST or open a WebSocket without
asking, but browsers always say where such a request comes from in `Origin`. Requests without an Origin
(curl, rtcap's publisher, Locust) come from no browser page and pass.

One pure ASGI middleware does both checks, so streams pay nothing beyond one header scan at their start.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:  # config.py imports this module, and --help must not wait for starlette
    from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing here, so they need neither the token nor a matching Origin."""
DEFAULT_PORTS = {"http": 80, "https": 443}
CLOSE_POLICY = 1008  # before the handshake completes, uvicorn answers a close with HTTP 403


def is_loopback(host: str) -> bool:
    """True if `host` reaches this machine only: a loopback address or `localhost` ("", 0.0.0.0 are everywhere)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another name may resolve anywhere: treat it as exposed


def _scheme_host_port(origin: str) -> tuple[str, str, int]:
    """(scheme, host, port) of `scheme://host[:port]`, default ports filled in; ValueError for anything else."""
    parts = urlsplit(origin.strip())
    port = parts.port  # raises ValueError for a port that is not a number in range
    if (parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None
            or parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ValueError(f"{origin!r} is not an origin like https://example.com:8443")
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def normalise_origin(origin: str) -> str:
    """`origin` as browsers send it: lower case, default port omitted; ValueError if it is not an origin."""
    scheme, host, port = _scheme_host_port(origin)
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if port == DEFAULT_PORTS[scheme] else f"{scheme}://{shown}:{port}"


class OriginPolicy:
    """Decides whether a browser request's Origin may change state: the server's own origin or an allowed one.

    The server's own origin is the one the browser used to reach it, i.e. its Host header. On a loopback
    server that host must also be a loopback name: otherwise a page at http://evil.example:PORT whose name
    was re-pointed at 127.0.0.1 (DNS rebinding) would count as same-origin.
    """

    def __init__(self, allowed: Iterable[str] = (), loopback: bool = True) -> None:
        self.allowed = frozenset(normalise_origin(o) for o in allowed)
        self.loopback = loopback

    def permits(self, origin: str, host: str | None) -> bool:
        """True if a request with this Origin and Host header may go on."""
        try:
            normalised = normalise_origin(origin)
            scheme, origin_host, origin_port = _scheme_host_port(normalised)
        except ValueError:
            return False  # "null" (sandboxed frames, file: pages) and anything malformed
        if normalised in self.allowed:
            return True
        if not host:
            return False
        try:
            reached = urlsplit(f"//{host.strip()}")
            host_name, host_port = reached.hostname, reached.port or DEFAULT_PORTS[scheme]
        except ValueError:
            return False
        if self.loopback and not is_loopback(host_name or ""):
            return False
        return (host_name, host_port) == (origin_host, origin_port)


def token_matches(token: str, authorization: str | None, query_string: bytes) -> bool:
    """True if `Authorization: Bearer <token>` or `?token=<token>` carries the token (compared in constant time)."""
    offered: list[str] = []
    if authorization:
        kind, _, value = authorization.strip().partition(" ")
        if kind.lower() == "bearer":
            offered.append(value.strip())
    offered += [v for k, v in parse_qsl(query_string.decode("latin-1")) if k == "token"]
    expected = token.encode()
    return any(hmac.compare_digest(o.encode(), expected) for o in offered)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class AccessGuard:
    """ASGI middleware: state-changing HTTP requests need an acceptable Origin (if any) and the token (if set);
    WebSocket handshakes need an acceptable Origin (if any).

    Refusals: 403 for a foreign Origin (a WebSocket gets a close before its handshake completes, which
    uvicorn answers with 403), 401 without the token.
    """

    def __init__(self, app: ASGIApp, token: str | None, origins: OriginPolicy) -> None:
        self.app = app
        self.token = token
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (kind == "http" and scope["method"] in SAFE_METHODS) or kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is not None and not self.origins.permits(origin, _header(scope, b"host")):
            if kind == "websocket":
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": CLOSE_POLICY, "reason": "cross-origin"})
            else:
                await _refuse(send, 403, f"cross-origin request from {origin} refused (see --allow-origin)")
            return
        if kind == "http" and self.token is not None and not token_matches(
                self.token, _header(scope, b"authorization"), scope.get("query_string", b"")):
            await _refuse(send, 401, "this server needs its publish token: Authorization: Bearer TOKEN or "
                                     "?token=TOKEN", {"www-authenticate": 'Bearer realm="rtcap"'})
            return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """A JSON error; the connection closes, since the request body was never read."""
    body = json.dumps({"error": message}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]
    head += [(k.encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
