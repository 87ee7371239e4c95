"""A keep-alive HTTP/1.1 client (h11) over a byte-counting socket, so polling's bytes on the wire are exact.

No Locust import here; the polling user fires the request events itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import h11

from loadtests.netio import CountingSocket, open_counting_connection, split_url


@dataclass(frozen=True)
class HTTPResponse:
    """One complete response: status, headers (lower-case names), body, and the time it took."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float


class HTTPConnection:
    """One persistent connection to one origin; reconnects when the server closes it."""

    def __init__(self, base_url: str, timeout: float = 30.0, user_agent: str = "rtcap") -> None:
        host, port, _path, _secure = split_url(base_url)
        self.base_url = base_url
        self.authority = f"{host}:{port}"
        self.timeout = timeout
        self.user_agent = user_agent
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
        self._http = h11.Connection(h11.CLIENT)
        self.connects += 1
        return (time.perf_counter() - started) * 1000.0

    def get(self, url: str, headers: dict[str, str] | None = None) -> HTTPResponse:
        """GET an absolute URL on this origin; raises OSError or h11.ProtocolError if the exchange fails."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None and self._http is not None
        _host, _port, target, _secure = split_url(url)
        started = time.perf_counter()
        lines = [("Host", self.authority), ("User-Agent", self.user_agent), *(headers or {}).items()]
        try:
            self.sock.sendall(self._http.send(h11.Request(method="GET", target=target, headers=lines)))
            self.sock.sendall(self._http.send(h11.EndOfMessage()))
            status, response_headers, body = 0, {}, bytearray()
            while True:
                event = self._http.next_event()
                if event is h11.NEED_DATA:
                    data = self.sock.recv(65536)
                    self._http.receive_data(data)
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                    response_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionResetError(f"{self.authority} closed the connection mid-response")
        except (OSError, h11.ProtocolError):
            self.close()
            raise
        if self._http.our_state is h11.DONE and self._http.their_state is h11.DONE:
            self._http.start_next_cycle()
        else:
            self.close()  # the server asked to close (or HTTP/1.0): the next request reconnects
        return HTTPResponse(status, response_headers, bytes(body), (time.perf_counter() - started) * 1000.0)

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
