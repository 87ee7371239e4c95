"""`rtcap check-target` for the HTTP-polled transports (poll, longpoll, state): the polled read loop.

The check hook of every record whose kind is "polled" (targets/transports.py names this module as its
`check_module`); loadtests/run/check.py drives it for order, seq and ts. It polls with the users' own keep-alive
client (http_client.HTTPConnection) and the validators of the last 200, as a viewer would.
Blocking and Locust-free: this runs in the orchestrator.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rtcap.targets.adapter_fields import parse_body
from rtcap.loadtests.transports.checking import CheckFailed, Receiver
from rtcap.loadtests.transports.http_client import HTTPConnection

if TYPE_CHECKING:
    from rtcap.targets.adapter import TargetAdapter
    from rtcap.targets.transports import Transport


class _Poller:
    """Polls with the users' own keep-alive client and the validators of the last 200 (ETag, Last-Modified)."""

    def __init__(self, base_url: str, headers: dict[str, str], conditional: bool, timeout: float,
                 follow_redirects: bool = False) -> None:
        self.http = HTTPConnection(base_url, timeout=timeout, follow_redirects=follow_redirects)
        self.headers = headers
        self.conditional = conditional
        self.validators: dict[str, str] = {}

    def get(self, url: str) -> bytes | None:
        """The body of a 200, or None for a 304; CheckFailed for any other status."""
        response = self.http.get(url, {**self.headers, **self.validators})
        if response.status == 304:
            return None
        if response.status != 200:
            raise CheckFailed(f"GET {url} answered {response.status}")
        if self.conditional:
            found = {"If-None-Match": response.headers.get("etag"),
                     "If-Modified-Since": response.headers.get("last-modified")}
            self.validators = {k: v for k, v in found.items() if v}
        return response.body

    def close(self) -> None:
        """Close the connection."""
        self.http.close()


def open_check(adapter: TargetAdapter, record: Transport, timeout: float, receiver: Receiver) -> float:
    """Connect, then poll on the receiver's thread; the first answer only syncs the cursor (what it lists was
    there before the check), later answers deliver. Returns once the first poll is going out: a long poll may
    be held until something is published, which the checker does next."""
    transport = record.name
    spec = adapter.transport(transport)
    poller = receiver.client = _Poller(adapter.base_url, adapter.headers, spec.conditional, timeout,
                                       adapter.follow_redirects)
    connect_ms = poller.http.connect()

    def read_polls() -> None:
        cursor: Any = "0"
        seen: set[Any] = set()  # full-state polling repeats old events every time
        first = True
        while not receiver.stop.is_set():
            sent = time.perf_counter()
            receiver.polling.set()
            raw = poller.get(adapter.url_for(transport, cursor=cursor))
            received_at = time.time()
            if first:
                receiver.first_answer_ms = (time.perf_counter() - sent) * 1000.0
            news = False
            if raw is not None:
                reply = parse_body(raw)
                last = None
                for event in spec.events_in(reply):
                    if adapter.is_event(transport, event):
                        seq = adapter.extract(transport, event)[0]
                        last = seq
                        if seq not in seen and not first:
                            receiver.items.put((event, received_at, None))
                            news = True
                        seen.add(seq)
                cursor = spec.cursor_in(reply, last if last is not None else cursor)
            first = False
            # Short polls keep an interval; a long poll asks again at once unless it came back empty-handed
            # without being held (a server that does not hold must not be hammered).
            if record.interval or (not news and time.perf_counter() - sent < 0.2):
                receiver.stop.wait(0.2)
    receiver.run(read_polls)
    receiver.polling.wait(timeout)
    return connect_ms
