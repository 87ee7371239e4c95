"""Request/response over a WebSocket: requests carry ids, responses are matched by id (in any order).

`WebSocketRequester` sends `--request-rate` requests per second per user on a fixed schedule (open loop: it
does not wait for answers, as a multiplexing client would), or with `--request-rate 0` one at a time (closed
loop). Each answered request is a Locust request event of type "rpc" whose response time runs from its tick
(coordinated omission). A request unanswered after `--request-timeout`, or still pending when the connection
breaks, is a failure named "unanswered"; one still younger than IN_FLIGHT_GRACE_S when Locust stops the user
was merely in flight and is counted as `in_flight`, not as an error. Neither is ever dropped silently.
"""

from __future__ import annotations

import sys
import time

import gevent
import websocket
from gevent.event import Event

from rtcap.loadtests.transports import metrics
from rtcap.loadtests.transports.pacer import Pacer
from rtcap.targets.adapter_fields import parse_body
from rtcap.loadtests.transports.ws import _WebSocketUser
from rtcap.loadtests.transports.ws_client import WebSocketClient

IN_FLIGHT_GRACE_S = 1.0
"""A request sent this recently when Locust stops the user was in flight, not unanswered."""


class RequestFailed(Exception):
    """A response whose status says the request failed."""


class Unanswered(Exception):
    """A request whose response never came (timed out, or the connection went away first)."""


class UnexpectedResponse(Exception):
    """A response to an id that is not pending (answered twice, or never asked)."""


class WebSocketRequester(_WebSocketUser):
    """Sends id-tagged requests over one WebSocket and times each response matched by id."""

    abstract = True
    transport = "rpc"

    def on_start(self) -> None:
        """Set up the request ids and the table of pending requests on top of the stream state."""
        super().on_start()
        self.spec = self.adapter.transport(self.transport)
        self.sent = 0
        self.pending: dict[str, float] = {}  # request id (as text) -> its tick on the monotonic clock
        self.answered = Event()
        self.sender: gevent.Greenlet | None = None

    def on_connected(self, client: WebSocketClient) -> None:
        """Subscribe if the adapter says so, then start sending requests."""
        super().on_connected(client)
        self.sender = gevent.spawn(self._send_loop, client)

    def _send_loop(self, client: WebSocketClient) -> None:
        rate = self.settings.request_rate
        pacer = Pacer.with_random_phase(rate, time.monotonic())
        tick = pacer.tick
        while True:
            time.sleep(max(0.0, tick - time.monotonic()))
            self._expire(time.monotonic())
            self.sent += 1
            request_id = self.sent
            self.pending[str(request_id)] = tick if rate > 0 else time.monotonic()
            self.answered.clear()
            try:
                client.send_text(self.spec.render_text("request", id=request_id, n=request_id, channel=self.channel))
            except (OSError, websocket.WebSocketException) as error:
                if self.sender is gevent.getcurrent():  # else the connection is being closed on purpose
                    metrics.report_error(self.environment, self.transport, "send", error)
                return
            if rate <= 0:
                self.answered.wait(self.settings.request_timeout)  # closed loop: one request at a time
            tick, skipped = pacer.next(time.monotonic())
            metrics.count(self.transport, "missed_ticks", skipped)

    def _expire(self, now: float) -> None:
        # Requests older than the timeout will not be answered in any useful time: they are errors now.
        timeout = self.settings.request_timeout
        for key, tick in list(self.pending.items()):
            if now - tick >= timeout:
                self._unanswered(key, tick, now, f"no response within {timeout:g} s")

    def _unanswered(self, key: str, tick: float, now: float, why: str) -> None:
        del self.pending[key]
        metrics.count(self.transport, "unanswered", 1)
        metrics.report_error(self.environment, self.transport, "unanswered", Unanswered(f"request {key}: {why}"),
                             (now - tick) * 1000.0)

    def read(self, client: WebSocketClient) -> None:
        """Match every response to its pending request and report its response time."""
        while True:
            text, _received_at, _wire = client.receive()
            now = time.monotonic()
            metrics.count(self.transport, "payload_bytes", len(text.encode("utf-8")))
            self.flush_bytes(client)
            answer = self.spec.response_of(parse_body(text))
            if answer is None:
                continue  # pongs, pushes, error frames without an id: not answers
            request_id, ok = answer
            tick = self.pending.pop(str(request_id), None)
            if tick is None:
                metrics.report_error(self.environment, self.transport, "response",
                                     UnexpectedResponse(f"response to id {request_id!r}, which is not pending"))
                continue
            self.answered.set()
            metrics.count(self.transport, "round_trips", 1)
            self.environment.events.request.fire(
                request_type=self.transport, name="request", response_time=(now - tick) * 1000.0,
                response_length=len(text), exception=None if ok else RequestFailed(f"failed response: {text[:200]}"),
                context={"transport": self.transport},
            )

    def on_disconnected(self) -> None:
        """Stop sending; account for every request still pending (unanswered, or in flight at a stop)."""
        if self.sender is not None:
            self.sender.kill(block=False)
            self.sender = None
        now = time.monotonic()
        stopping = isinstance(sys.exc_info()[1], gevent.GreenletExit)  # Locust stopping us, not a broken socket
        for key, tick in list(self.pending.items()):
            if stopping and now - tick < IN_FLIGHT_GRACE_S:
                del self.pending[key]
                metrics.count(self.transport, "in_flight", 1)
            else:
                self._unanswered(key, tick, now, "connection closed before the response")


class RpcUser(WebSocketRequester):
    """Sends `--request-rate` id-tagged `get` requests per second over `/ws/rpc`, matching responses by id."""
