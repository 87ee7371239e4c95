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

h11 stays the authority on HTTP; the common exchange skips its state machine. A poll is a GET whose answer
is a head and a Content-Length body. h11 took about 66 us of CPU per such exchange (10 us to build and
validate the request, 40 us to read a 300-byte head and its body one event at a time through its state
machine), and with the two sendall calls around it (gevent's sendall asks the socket its buffer size, a
system call, each time) over a third of a poll's cost: py-spy on a Locust process polling nchan with 2,000
viewers every second put 28% of all samples in h11 and 15% in sendall. So a request whose headers h11 would
send unchanged (ASCII, valid by h11's own patterns, one Host, no Content-Length, Transfer-Encoding, Upgrade or
Expect) is written here byte for byte as h11 writes it (Host first) and sent with one send(); its answer is
parsed here with h11's own patterns (its status-line and header-line expressions, the same blank line ending
the head), but only an answer h11 reads without a choice to make: HTTP/1.1, status 200 or above, CRLF line
ends, no folded or malformed line, a single well-formed Content-Length (or a 204/304), no Transfer-Encoding,
nothing after the body. Anything else (a 1xx, a chunked or close-delimited body, a connection closed early,
bytes after the answer, a head h11 would refuse) is handed to h11 with every byte read so far, as it would
have read them, and h11's answer or error is the result: what is refused, and the errors' messages, are h11's
as before (tests/loadtests/hostile; tests/loadtests/test_poll_fastpath.py reads every such case both ways).
The same reads, limits and deadlines bound both paths; the socket counts every byte either way. The fast path
takes about 13 us per exchange (4 to write the request, 9 to read the answer); with it, rtcap's poll went
from 2,660-3,740 to 4,620-6,140 polls per CPU-second against nchan (bench/generator.py, 1,000-3,000 viewers).

geventhttpclient's C parser (llhttp, `geventhttpclient._parser`) reads the same answer in about 6.5 us instead
of 9, but it accepts what h11 refuses and the reverse, streams chunk headers without a bound, and does not say
where an answer ends inside a read (what is left belongs to the next one): with it, a hostile target's
failures would read differently from every other client path here, for 2.5 us per poll.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit

import h11

from rtcap.loadtests.transports.http_fast import HandToH11, blank_line_regex, fast_head, request_head
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
        self._target: tuple[str, str] = ("", "")  # (the last URL, its path and query)
        self.fast_exchanges = 0
        """Exchanges read without h11 (the rest went through it)."""

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
        self._http = None  # the fast path until an exchange needs h11
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
        assert self.sock is not None
        if self._target[0] != url:
            self._target = (url, split_url(url)[2])
        target = self._target[1]
        lines = [("Host", self.authority), ("User-Agent", self.user_agent), *headers.items()]
        try:
            fast = None if self._http is not None else request_head(target, lines)
            if fast is None:
                self._http = self._http or self._new_h11()
                self._send(self._http.send(h11.Request(method="GET", target=target, headers=lines)))
                end = self._http.send(h11.EndOfMessage())  # nothing for a GET, unless h11 refuses the request
                if end:
                    self._send(end)
                self._arm_head()
                return self._h11_answer(self._http)
            self._send(fast[0])
            self._arm_head()
            try:
                status, response_headers, body, close = self._fast_answer(fast[1])
            except HandToH11 as handed:
                # h11 reads this answer from its first byte, as it would have: the request as it went out.
                http = self._http = self._new_h11()
                http.send(h11.Request(method="GET", target=target, headers=lines))
                http.send(h11.EndOfMessage())
                if handed.received:
                    http.receive_data(bytes(handed.received))
                if handed.eof:
                    http.receive_data(b"")
                return self._h11_answer(http)
        except (OSError, h11.ProtocolError):
            self.close()
            raise
        self.fast_exchanges += 1
        if close:
            self.close()  # the server (or the request) asked to close: the next request reconnects
        return status, response_headers, body

    def _new_h11(self) -> h11.Connection:
        return h11.Connection(h11.CLIENT, max_incomplete_event_size=self.limits.http_head_bytes)

    def _send(self, data: bytes) -> None:
        """Send a request: one send() when the socket takes it all (a poll's request always fits), the rest
        with sendall (gevent's sendall asks the socket its buffer size first: a system call per request)."""
        assert self.sock is not None
        sent = self.sock.send(data)
        if sent < len(data):
            self.sock.sendall(data[sent:])

    def _arm_head(self) -> None:
        assert self.sock is not None
        self.sock.read_deadline(self.limits.head_timeout,
                                f"no response head from {self.authority} within {self.limits.head_timeout:g} s")

    def _arm_body(self) -> None:
        assert self.sock is not None
        self.sock.read_deadline(self.limits.body_timeout, f"response body from {self.authority} not "
                                f"complete within {self.limits.body_timeout:g} s of its head")

    def _head_too_long(self) -> LimitExceeded:
        return LimitExceeded(f"HTTP response head longer than {size(self.limits.http_head_bytes)}")

    def _fast_answer(self, close: bool) -> tuple[int, dict[str, str], bytes, bool]:
        """Read an answer the fast path can read (see the module): (status, headers, body, close after it);
        HandToH11 with every byte read so far for any other. Same reads, limits and deadlines as h11's path."""
        assert self.sock is not None
        limits = self.limits
        received: bytes | bytearray = self.sock.recv(READ_SIZE)
        searched = 0
        while True:
            if not received:
                raise HandToH11(received, eof=True)
            blank = blank_line_regex.search(received, max(0, searched - 2))
            if blank is not None:
                break
            if len(received) > limits.http_head_bytes:  # as h11's max_incomplete_event_size
                raise self._head_too_long()
            searched = len(received)
            received = self._more(received)
        start = blank.start()
        if start < 1 or received[start - 1] != 13 or blank.end() - start != 3:  # not CRLF CRLF: h11 reads it
            raise HandToH11(received)
        try:
            status, headers, length, close = fast_head(received[:start - 1], close)
        except HandToH11:
            raise HandToH11(received) from None
        # A declared length past the limit is refused before a byte of it is read.
        if int(headers.get("content-length", "0")) > limits.http_body_bytes:
            raise self._too_large(f" (Content-Length: {headers['content-length']})")
        self._arm_body()
        end = blank.end() + length
        while len(received) < end:
            received = self._more(received)
        if len(received) > end:
            raise HandToH11(received)  # bytes after the answer: h11 keeps them for the next one
        self.sock.read_deadline(None)
        return status, headers, bytes(received[blank.end():end]), close

    def _more(self, received: bytes | bytearray) -> bytearray:
        """`received` and the next read; HandToH11 with all of it when the server closed instead."""
        assert self.sock is not None
        data = self.sock.recv(READ_SIZE)
        if not data:
            raise HandToH11(received, eof=True)
        if isinstance(received, bytes):
            received = bytearray(received)
        received += data
        return received

    def _h11_answer(self, http: h11.Connection) -> tuple[int, dict[str, str], bytes]:
        """Read the answer through h11 (the request already sent and given to it); the connection goes back to
        the fast path after a clean exchange that left nothing in h11's buffer."""
        assert self.sock is not None
        limits = self.limits
        status, response_headers, body = 0, {}, bytearray()
        while True:
            event = next_h11_event(http, limits.http_head_bytes)
            if event is h11.NEED_DATA:
                http.receive_data(self.sock.recv(READ_SIZE))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                response_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
                # A declared length past the limit is refused before a byte of it is read.
                if int(response_headers.get("content-length", "0")) > limits.http_body_bytes:
                    raise self._too_large(f" (Content-Length: {response_headers['content-length']})")
                self._arm_body()
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > limits.http_body_bytes:
                    raise self._too_large("")
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError(f"{self.authority} closed the connection mid-response")
        self.sock.read_deadline(None)
        if http.our_state is h11.DONE and http.their_state is h11.DONE:
            http.start_next_cycle()
            if not http.trailing_data[0]:
                self._http = None  # nothing pending: the next exchange may take the fast path
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
