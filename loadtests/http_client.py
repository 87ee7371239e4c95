"""A keep-alive HTTP/1.1 client (h11) over a byte-counting socket, so polling's bytes on the wire are exact.

It holds no more than the limits allow (a head of `http_head_bytes`, a body of `http_body_bytes`), waits no
longer than `head_timeout` for a head and `body_timeout` for the rest, and follows no redirect: each of these
is a LimitExceeded (an OSError), so callers report it as a failed request and the connection is closed.
No Locust import here; the polling user fires the request events itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import h11

from loadtests.limits import DEFAULT_LIMITS, REDIRECT_STATUSES, LimitExceeded, Limits, redirect_error, size
from loadtests.netio import CountingSocket, open_counting_connection, split_url

READ_SIZE = 65536
"""Bytes asked of the socket per read: what one read can put past a limit before it is noticed."""


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
    """One complete response: status, headers (lower-case names), body, and the time it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float


class HTTPConnection:
    """One persistent connection to one origin; reconnects when the server closes it.

    `timeout` bounds each socket operation (connect, one read); `limits` bound a whole answer."""

    def __init__(self, base_url: str, timeout: float = 30.0, user_agent: str = "rtcap",
                 limits: Limits = DEFAULT_LIMITS) -> None:
        host, port, _path, _secure = split_url(base_url)
        self.base_url = base_url
        self.authority = f"{host}:{port}"
        self.timeout = timeout
        self.user_agent = user_agent
        self.limits = limits
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
        """GET an absolute URL on this origin; raises OSError (LimitExceeded past a limit or on a redirect) or
        h11.ProtocolError if the exchange fails."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None and self._http is not None
        _host, _port, target, _secure = split_url(url)
        started = time.perf_counter()
        lines = [("Host", self.authority), ("User-Agent", self.user_agent), *(headers or {}).items()]
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
        if status in REDIRECT_STATUSES:
            raise redirect_error(status, response_headers.get("location"), url)
        return HTTPResponse(status, response_headers, bytes(body), (time.perf_counter() - started) * 1000.0)

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
