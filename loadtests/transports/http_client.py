"""A keep-alive HTTP/1.1 client (h11) over a byte-counting socket, so polling's bytes on the wire are exact.

It holds no more than the limits allow (a head of `http_head_bytes`, a body of `http_body_bytes`), waits no
longer than `head_timeout` for a head and `body_timeout` for the rest: each of these is a LimitExceeded (an
OSError), so callers report it as a failed request and the connection is closed.

Redirects are refused (RedirectRefused) unless the connection is made with `follow_redirects` (an adapter's
`follow_redirects = true`). Even then only a redirect that stays on the request's origin (scheme, host, port)
is followed, at most REDIRECT_HOPS times: a target that redirects may be answering, but one that sends a
load generator to another host is not the server under test. The origin policy here is shared with the
orchestrator's plain requests (loadtests/run/urlopen.py).
No Locust import here; the polling user fires the request events itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit

import h11

from rtcap.loadtests.transports.limits import (
    DEFAULT_LIMITS,
    REDIRECT_STATUSES,
    LimitExceeded,
    Limits,
    RedirectRefused,
    redirect_error,
    size,
)
from rtcap.loadtests.transports.netio import CountingSocket, open_counting_connection, split_url

READ_SIZE = 65536
"""Bytes asked of the socket per read: what one read can put past a limit before it is noticed."""
REDIRECT_HOPS = 5
"""Redirects followed for one request when following is on; the next one is TooManyRedirects."""
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
"""Request headers that identify the client: never sent to another origin."""


class RedirectNotFollowed(RedirectRefused):
    """A redirect that following still refuses (no Location, another origin, a method change, too many hops).

    `status` is the 3xx that asked for it; it defaults to None so the error survives pickling."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TooManyRedirects(RedirectNotFollowed):
    """More than REDIRECT_HOPS redirects for one request: a loop, or a chain too long to be an answer."""


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute URL, the default port filled in; ValueError for a bad port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme in ("https", "wss") else 80)


def _show_origin(url: str) -> str:
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}"


def redirect_target(status: int, location: str | None, url: str, hop: int) -> str:
    """The absolute URL a redirect of `url` leads to, as hop number `hop` (1 for the first redirect).

    Raises RedirectNotFollowed when there is nowhere to go or the Location leaves the origin of `url` (checked
    before anything is sent there), and TooManyRedirects past REDIRECT_HOPS."""
    if not location:
        raise RedirectNotFollowed(f"HTTP {status} from {url}: redirected to (no Location); nothing to follow", status)
    target = urldefrag(urljoin(url, location.strip())).url
    try:
        same = origin(target) == origin(url)
    except ValueError:  # a Location with an unusable port
        same = False
    if not same:
        raise RedirectNotFollowed(f"HTTP {status} from {url}: redirected to {target}, which leaves the origin "
                                  f"{_show_origin(url)}; only same-origin redirects are followed", status)
    if hop > REDIRECT_HOPS:
        raise TooManyRedirects(f"HTTP {status} from {url}: redirected to {target}, past the {REDIRECT_HOPS} "
                               "redirects followed per request (a redirect loop?)", status)
    return target


def hop_headers(headers: dict[str, str], source: str, target: str) -> dict[str, str]:
    """The headers a redirected request carries from `source` to `target`: all of them on the same origin,
    never Authorization, Cookie or Proxy-Authorization to another. redirect_target already refuses other
    origins; this keeps credentials home even if a caller ever sends a hop elsewhere."""
    if origin(source) == origin(target):
        return dict(headers)
    return {name: value for name, value in headers.items() if name.lower() not in CREDENTIAL_HEADERS}


def next_h11_event(http: h11.Connection, max_head: int) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
    """`http.next_event()`, with a head or chunk header longer than h11's max_incomplete_event_size (the
    connection was made with `max_head`) raised as LimitExceeded instead of h11's anonymous 431."""
    in_body = http.their_state is h11.SEND_BODY
    try:
        return http.next_event()
    except h11.RemoteProtocolError as error:
        if error.error_status_hint == 431:  # h11: "Receive buffer too long"
            what = "HTTP chunk header" if in_body else "HTTP response head"
            raise LimitExceeded(f"{what} longer than {size(max_head)}") from error
        raise


@dataclass(frozen=True)
class HTTPResponse:
    """One complete response: status, headers (lower-case names), body, the time it took (every hop) and how
    many redirects were followed to reach it."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float
    redirects: int = 0


class HTTPConnection:
    """One persistent connection to one origin; reconnects when the server closes it.

    `timeout` bounds each socket operation (connect, one read); `limits` bound each answer (each hop of a
    followed redirect is one answer). `follow_redirects`: follow same-origin redirects (see the module)."""

    def __init__(self, base_url: str, timeout: float = 30.0, user_agent: str = "rtcap",
                 limits: Limits = DEFAULT_LIMITS, follow_redirects: bool = False) -> None:
        host, port, _path, _secure = split_url(base_url)
        self.base_url = base_url
        self.authority = f"{host}:{port}"
        self.timeout = timeout
        self.user_agent = user_agent
        self.limits = limits
        self.follow_redirects = follow_redirects
        self.sock: CountingSocket | None = None
        self._http: h11.Connection | None = None
        self._closed_counts = (0, 0)
        self.connects = 0

    @property
    def byte_counts(self) -> tuple[int, int]:
        """(bytes sent, bytes received) over every connection this client opened."""
        sent, received = self._closed_counts
        if self.sock is not None:
            sent, received = sent + self.sock.bytes_sent, received + self.sock.bytes_received
        return sent, received

    def connect(self) -> float:
        """Open the TCP connection now; return its set-up time in milliseconds."""
        started = time.perf_counter()
        self.sock = open_counting_connection(self.base_url, self.timeout)
        self._http = h11.Connection(h11.CLIENT, max_incomplete_event_size=self.limits.http_head_bytes)
        self.connects += 1
        return (time.perf_counter() - started) * 1000.0

    def get(self, url: str, headers: dict[str, str] | None = None) -> HTTPResponse:
        """GET an absolute URL on this origin; raises OSError (LimitExceeded past a limit, RedirectRefused on a
        redirect not followed) or h11.ProtocolError if the exchange fails.

        A followed redirect is asked again on this keep-alive connection (a new one if the server closed it),
        so every hop's bytes are in `byte_counts`; `elapsed_ms` runs from the first request to the last answer.
        Every hop goes over this connection to its origin, and one leaving it is refused before it is sent:
        no header (Authorization, Cookie) ever reaches another origin."""
        started = time.perf_counter()
        headers = dict(headers or {})
        hops = 0
        while True:
            status, response_headers, body = self._exchange(url, headers)
            if status not in REDIRECT_STATUSES:
                return HTTPResponse(status, response_headers, body, (time.perf_counter() - started) * 1000.0, hops)
            location = response_headers.get("location")
            if not self.follow_redirects:
                raise redirect_error(status, location, url)
            hops += 1
            target = redirect_target(status, location, url, hops)
            headers, url = hop_headers(headers, url, target), target

    def _exchange(self, url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """One request and its whole answer: (status, headers with lower-case names, body)."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None and self._http is not None
        _host, _port, target, _secure = split_url(url)
        lines = [("Host", self.authority), ("User-Agent", self.user_agent), *headers.items()]
        limits = self.limits
        try:
            self.sock.sendall(self._http.send(h11.Request(method="GET", target=target, headers=lines)))
            self.sock.sendall(self._http.send(h11.EndOfMessage()))
            self.sock.read_deadline(limits.head_timeout,
                                    f"no response head from {self.authority} within {limits.head_timeout:g} s")
            status, response_headers, body = 0, {}, bytearray()
            while True:
                event = next_h11_event(self._http, limits.http_head_bytes)
                if event is h11.NEED_DATA:
                    self._http.receive_data(self.sock.recv(READ_SIZE))
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                    response_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
                    # A declared length past the limit is refused before a byte of it is read.
                    if int(response_headers.get("content-length", "0")) > limits.http_body_bytes:
                        raise self._too_large(f" (Content-Length: {response_headers['content-length']})")
                    self.sock.read_deadline(limits.body_timeout, f"response body from {self.authority} not "
                                            f"complete within {limits.body_timeout:g} s of its head")
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > limits.http_body_bytes:
                        raise self._too_large("")
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionResetError(f"{self.authority} closed the connection mid-response")
            self.sock.read_deadline(None)
        except (OSError, h11.ProtocolError):
            self.close()
            raise
        if self._http.our_state is h11.DONE and self._http.their_state is h11.DONE:
            self._http.start_next_cycle()
        else:
            self.close()  # the server asked to close (or HTTP/1.0): the next request reconnects
        return status, response_headers, bytes(body)

    def _too_large(self, detail: str) -> LimitExceeded:
        return LimitExceeded(f"response body larger than {size(self.limits.http_body_bytes)} from "
                             f"{self.authority}{detail}")

    def close(self) -> None:
        """Close the connection, keeping its byte counts."""
        if self.sock is not None:
            sent, received = self._closed_counts
            self._closed_counts = (sent + self.sock.bytes_sent, received + self.sock.bytes_received)
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self._http = None
